// The page: talks to the model's Web Worker, so loading and generation never block the UI.
const $ = (id) => document.getElementById(id);
const worker = new Worker('worker.js', { type: 'module' });
const pending = new Map();
let nextId = 1;
let manifest = { tasks: [] };
const examples = {};
// The loaded hypernetwork's tasks (their adapters are generated when chosen).
let hyperTasks = [];

worker.onmessage = ({ data }) => {
  const request = pending.get(data.id);
  if (!request) return;
  if (data.progress) return request.onProgress && request.onProgress(data.progress);
  pending.delete(data.id);
  data.ok ? request.resolve(data.result) : request.reject(new Error(data.error));
};
worker.onerror = (e) => fail(`the worker failed: ${e.message}`);

function ask(type, args = {}, onProgress) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onProgress });
    worker.postMessage({ id, type, ...args });
  });
}

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) $('status').textContent = message;
  const busy = state !== 'ready';
  $('run').disabled = busy;
  $('bench-run').disabled = busy;
  $('task').disabled = busy;
  for (const id of ['blend-a', 'blend-b', 'blend-alpha']) $(id).disabled = busy;
}

function fail(message) {
  $('error').textContent = message;
  setState(document.body.dataset.loaded ? 'ready' : 'error', document.body.dataset.loaded ? 'Ready' : 'Failed');
}

const showProgress = ({ what, loaded, total }) => {
  $('progress').max = total || loaded;
  $('progress').value = loaded;
  const mb = (n) => (n / 1e6).toFixed(2);
  $('status').textContent = `Loading ${what.split('/').pop()}: ${mb(loaded)}${total ? ` / ${mb(total)}` : ''} MB`;
};

async function loadBackbone(source) {
  setState('loading', 'Loading the backbone…');
  $('error').textContent = '';
  const backend = new URLSearchParams(location.search).get('backend') || $('backend-choice').value;
  $('backend-choice').value = backend;
  const info = await ask('load', { ...source, backend }, showProgress);
  $('backend').textContent = info.backend + (info.note ? ` — ${info.note}` : '');
  $('model-info').textContent = `${info.summary} (set up in ${info.ms.toFixed(0)} ms)`;
  document.body.dataset.backend = info.backend;
  document.body.dataset.loaded = '1';
}

// The task list (a hypernetwork's tasks marked), with `selected` chosen.
function listTasks(tasks, selected) {
  const label = (t) => (hyperTasks.includes(t) ? `${t} (hypernetwork)` : t);
  $('task').replaceChildren(...tasks.map((t) => new Option(label(t), t)));
  $('task').value = selected;
}

async function addAdapter(source) {
  const { name, tasks } = await ask('adapter', source, showProgress);
  const keep = $('task').value;
  listTasks(tasks, keep && tasks.includes(keep) ? keep : name);
  return name;
}

async function addHypernetwork(source) {
  const { tasks, all } = await ask('hypernetwork', source);
  hyperTasks = tasks;
  listTasks(all, tasks[0]);
  $('blend-a').replaceChildren(...tasks.map((t) => new Option(t, t)));
  $('blend-b').replaceChildren(...tasks.map((t) => new Option(t, t)));
  $('blend-b').value = tasks[Math.min(1, tasks.length - 1)];
  $('blend-panel').hidden = false;
}

// Shows `task`'s description and examples (none for a generated adapter).
function showTask(task, about) {
  $('about').textContent = about;
  const list = examples[task] || [];
  $('example').replaceChildren(new Option(list.length ? 'Examples…' : 'No examples', ''),
    ...list.map((e, i) => new Option(e.input, String(i))));
  if (list.length) pickExample(0);
  else $('expected').textContent = '–';
  document.body.dataset.task = task;
}

// The task list's entry for the current blend (one at most; gone when another task is chosen).
function showBlendInList(name) {
  for (const o of [...$('task').options]) if (o.dataset.blend) o.remove();
  if (!name) return;
  const option = new Option(name, name);
  option.dataset.blend = '1';
  $('task').add(option);
  $('task').value = name;
}

async function switchTask() {
  const task = $('task').value;
  showBlendInList(null);
  const { ms, generated } = await ask('task', { task });
  $('switch-time').textContent = generated === null
    ? `${ms.toFixed(2)} ms (adapter only; the backbone stays loaded)`
    : `adapter generated in ${generated.toFixed(1)} ms (by the hypernetwork, from the task's embedding)`;
  const about = manifest.tasks.find((t) => t.name === task);
  showTask(task, about ? about.about : '');
}

// Generates the adapter between the two chosen tasks at the slider's α and switches to it.
async function blend() {
  const a = $('blend-a').value, b = $('blend-b').value, alpha = Number($('blend-alpha').value);
  $('blend-value').textContent = alpha.toFixed(2);
  setState('running', `Generating the adapter at α = ${alpha.toFixed(2)}…`);
  try {
    const { name, ms } = await ask('blend', { a, b, alpha });
    $('switch-time').textContent = `${name}: adapter generated in ${ms.toFixed(1)} ms`;
    showBlendInList(name);
    showTask(name, `between ${a} (α = 0) and ${b} (α = 1)`);
    setState('ready', 'Ready');
  } catch (e) {
    fail(e.message);
  }
}

function pickExample(i) {
  const e = examples[$('task').value][i];
  $('input').value = e.input;
  $('expected').textContent = e.prediction;
}

async function run() {
  setState('running', 'Generating…');
  $('error').textContent = '';
  try {
    const out = await ask('generate', { text: $('input').value, maxNewTokens: 16 });
    $('output').textContent = out.text;
    // A long input was cut to T5's source length: say so where errors appear.
    if (out.note) $('error').textContent = out.note;
    $('latency').textContent = `${out.ms.toFixed(1)} ms`;
    $('tps').textContent = (out.ids.length / (out.ms / 1000)).toFixed(1);
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
    setState('ready', 'Ready');
  } catch (e) {
    fail(e.message);
  }
}

// The same workload as `native bench --model web/demo/model --batch 1 --src-len 64 --new-tokens 32`.
async function bench() {
  setState('running', 'Benchmarking (64 input tokens → 32 new tokens, 20 runs after a warm-up)…');
  try {
    const seconds = await ask('bench', { srcLen: 64, newTokens: 32, repeats: 20 });
    const sorted = [...seconds].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    $('bench').textContent = `${(32 / median).toFixed(1)} tokens/s (median of ${seconds.length}: ${(median * 1000).toFixed(1)} ms for 32 tokens, ${document.body.dataset.backend})`;
    document.body.dataset.benchTps = String(32 / median);
    setState('ready', 'Ready');
  } catch (e) {
    fail(e.message);
  }
}

// Sorts picked or dropped files into a backbone, an adapter or a hypernetwork by their names.
async function useFiles(files, kind) {
  const byName = Object.fromEntries([...files].map((f) => [f.name, f]));
  const find = (suffix) => Object.keys(byName).find((n) => n.endsWith(suffix));
  try {
    if (kind === 'hypernetwork' || (!kind && find('hypernetwork_config.json'))) {
      const config = byName[find('hypernetwork_config.json')];
      const weights = byName[find('hypernetwork.safetensors')];
      const embeddings = byName[find('task_embeddings.safetensors')];
      if (!config || !weights || !embeddings) {
        throw new Error('a hypernetwork needs hypernetwork_config.json, hypernetwork.safetensors and task_embeddings.safetensors');
      }
      setState('loading', 'Loading the hypernetwork…');
      await addHypernetwork({ files: { config, weights, embeddings } });
      await switchTask();
      setState('ready', `Ready — hypernetwork with tasks ${hyperTasks.join(', ')} added`);
    } else if (kind === 'adapter' || (!kind && find('adapter_config.json'))) {
      const config = byName[find('adapter_config.json')];
      const weights = byName[find('.safetensors')];
      if (!config || !weights) throw new Error('an adapter needs adapter_config.json and adapter.safetensors');
      setState('loading', `Loading adapter ${config.name}…`);
      const name = await addAdapter({ files: { config, weights } });
      await switchTask();
      setState('ready', `Ready — adapter ${name} added`);
    } else {
      const config = byName['config.json'], weights = byName[find('.safetensors')], tokenizer = byName['tokenizer.json'];
      if (!config || !weights || !tokenizer) throw new Error('a backbone needs config.json, model.safetensors and tokenizer.json');
      await loadBackbone({ files: { config, weights, tokenizer } });
      hyperTasks = [];
      $('blend-panel').hidden = true;
      $('task').replaceChildren();
      $('example').replaceChildren();
      setState('ready', 'Ready — your backbone, no adapters yet (add one per task)');
      $('run').disabled = false;
    }
  } catch (e) {
    fail(`${e.message}\n(the previous model and adapters are still loaded)`);
  }
}

$('run').onclick = run;
$('bench-run').onclick = bench;
$('task').onchange = () => switchTask().catch((e) => fail(e.message));
$('example').onchange = (e) => e.target.value !== '' && pickExample(Number(e.target.value));
$('backbone-files').onchange = (e) => useFiles(e.target.files, 'backbone');
$('adapter-files').onchange = (e) => useFiles(e.target.files, 'adapter');
$('hyper-files').onchange = (e) => useFiles(e.target.files, 'hypernetwork');
$('blend-alpha').oninput = (e) => { $('blend-value').textContent = Number(e.target.value).toFixed(2); };
$('blend-alpha').onchange = blend;
$('blend-a').onchange = blend;
$('blend-b').onchange = blend;
$('backend-choice').onchange = (e) => { location.search = `?backend=${e.target.value}`; };
document.addEventListener('dragover', (e) => e.preventDefault());
document.addEventListener('drop', (e) => { e.preventDefault(); useFiles(e.dataTransfer.files); });

(async () => {
  try {
    manifest = await (await fetch('demo/manifest.json')).json();
    await loadBackbone({ base: `demo/${manifest.model}` });
    for (const t of manifest.tasks) {
      setState('loading', `Loading adapter ${t.name}…`);
      await addAdapter({ name: t.name, base: `demo/adapters/${t.name}` });
      const text = await (await fetch(`demo/examples/${t.name}.jsonl`)).text();
      examples[t.name] = text.trim().split('\n').map((l) => JSON.parse(l));
    }
    $('task').value = manifest.tasks[0].name;
    await switchTask();
    setState('ready', 'Ready');
  } catch (e) {
    fail(e.message);
  }
})();
