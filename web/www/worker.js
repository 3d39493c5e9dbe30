// The model's thread: loads the wasm module, one backbone and its adapters, and answers the page's
// requests one at a time (so a generation never overlaps an adapter switch).
import init, { Demo } from './t5-web.js';

let demo = null;
let queue = Promise.resolve();
const ready = init();

self.onmessage = (event) => {
  const { id, type, ...args } = event.data;
  queue = queue
    .then(async () => {
      await ready;
      const result = await handlers[type](args, id);
      self.postMessage({ id, ok: true, result });
    })
    .catch((err) => self.postMessage({ id, ok: false, error: String(err && err.message ? err.message : err) }));
};

const progress = (id, what, loaded, total) => self.postMessage({ id, progress: { what, loaded, total } });

// Downloads `url`, reporting bytes as they arrive.
async function fetchBytes(url, id) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('Content-Length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    progress(id, url, loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

const bytesOf = async (file) => new Uint8Array(await file.arrayBuffer());

// WebGPU when asked for (or on auto) and the browser gives an adapter; else the CPU.
async function chooseBackend(requested) {
  if (requested === 'cpu') return { backend: 'cpu', note: 'CPU chosen' };
  if (!('gpu' in navigator)) return { backend: 'cpu', note: 'this browser has no WebGPU (navigator.gpu)' };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (adapter) {
      const info = adapter.info || {};
      const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
      return { backend: 'webgpu', note: name };
    }
  } catch (e) { /* falls through */ }
  return { backend: 'cpu', note: 'WebGPU gave no adapter' };
}

const handlers = {
  // { base, backend } loads from URLs; { files: {config, weights, tokenizer}, backend } from Files.
  async load({ base, files, backend }, id) {
    const choice = await chooseBackend(backend || 'auto');
    let config, weights, tokenizer;
    if (files) {
      [config, weights, tokenizer] = await Promise.all([bytesOf(files.config), bytesOf(files.weights), bytesOf(files.tokenizer)]);
    } else {
      config = await fetchBytes(`${base}/config.json`, id);
      tokenizer = await fetchBytes(`${base}/tokenizer.json`, id);
      weights = await fetchBytes(`${base}/model.safetensors`, id);
    }
    const t0 = performance.now();
    const next = await Demo.load(config, weights, tokenizer, choice.backend);
    if (demo) demo.free();
    demo = next;
    return { backend: demo.backend, note: choice.note, summary: demo.model_summary, ms: performance.now() - t0 };
  },

  // { name, base } from URLs or { name, files: {config, weights} }.
  async adapter({ name, base, files }, id) {
    if (!demo) throw new Error('load a backbone first');
    let config, weights;
    if (files) {
      [config, weights] = await Promise.all([bytesOf(files.config), bytesOf(files.weights)]);
    } else {
      config = await fetchBytes(`${base}/adapter_config.json`, id);
      weights = await fetchBytes(`${base}/adapter.safetensors`, id);
    }
    return { name: demo.add_adapter(name || undefined, config, weights), tasks: demo.tasks() };
  },

  // { files: {config, weights, embeddings} }: a hypernetwork directory's three files.
  async hypernetwork({ files }) {
    if (!demo) throw new Error('load a backbone first');
    const [config, weights, embeddings] = await Promise.all(
      [bytesOf(files.config), bytesOf(files.weights), bytesOf(files.embeddings)]);
    return { tasks: demo.load_hypernetwork(config, weights, embeddings), all: demo.tasks() };
  },

  // `generated`: the ms the hypernetwork took to generate the task's adapter (null for an
  // attached adapter).
  async task({ task }) {
    const t0 = performance.now();
    const generated = await demo.set_task(task || undefined);
    return { ms: performance.now() - t0, generated: generated ?? null };
  },

  // The adapter of (1 - alpha)·e_a + alpha·e_b, generated and switched to.
  async blend({ a, b, alpha }) {
    const out = await demo.blend(a, b, alpha);
    const result = { name: out.name, ms: out.ms };
    out.free();
    return result;
  },

  // Greedy generation of `newTokens` tokens from a synthetic `srcLen`-token input; seconds per run.
  async bench({ srcLen, newTokens, repeats }) {
    return Array.from(await demo.benchmark(srcLen, newTokens, repeats));
  },

  async generate({ text, maxNewTokens }) {
    const t0 = performance.now();
    const out = await demo.generate(text, maxNewTokens, 1);
    const ms = performance.now() - t0;
    return { text: out.text, ids: Array.from(out.ids), ms, note: out.note ?? null };
  },
};
