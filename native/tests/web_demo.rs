//! End to end: the trunk build of the demo page (`dist/`), served on 127.0.0.1 and driven in
//! headless Chromium through chromedriver (W3C WebDriver), once on the CPU fallback and once on
//! WebGPU. Per task it picks the task, types an input, runs, and reads the output, which must
//! equal the native prediction that `scripts/make-demo-assets` stored for that input; then a
//! corrupted adapter is dropped in, which must show an error and leave the page working. Last, a
//! hypernetwork fixture and its backbone are loaded through the file inputs: each task's adapter,
//! generated in the page, and the slider's blends at α = 0 and 1 must print the text PyTorch
//! generated (its `golden.json`), and at α = 0.5 what `native` generates for the same blend.
//! Screenshots, the measured tokens/s and the adapter generation times go to
//! `target/web-demo/`.
//!
//! Needs `trunk build --release`, `chromium` and `chromium-driver`, so it is `#[ignore]`d in a
//! plain `cargo test`; `scripts/test` builds the page and runs it with `--ignored`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ------------------------------------------------------------------ static server --

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        // Module scripts and workers are refused unless served as JavaScript.
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json") | Some("jsonl") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Serves `dir` on 127.0.0.1 from a background thread; returns the base URL.
fn serve(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let _ = answer(stream, &dir);
            });
        }
    });
    format!("http://{addr}")
}

fn answer(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let rel = if path == "/" {
        "index.html"
    } else {
        path.trim_start_matches('/')
    };
    let file = dir.join(rel);
    let (status, body, kind) = if !rel.contains("..") && file.is_file() {
        ("200 OK", std::fs::read(&file)?, content_type(&file))
    } else {
        ("404 Not Found", b"not found".to_vec(), "text/plain")
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

// ---------------------------------------------------------------------- webdriver --

struct Driver {
    process: Child,
    base: String,
    session: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let process = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {chromedriver} (apt-get install chromium-driver): {e}")
            });
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "headless=new",
            "no-sandbox",
            "disable-dev-shm-usage",
            "window-size=1100,1300",
            // WebGPU in headless Chromium (SwiftShader when there is no GPU).
            "enable-unsafe-webgpu",
        ];
        let mut options = json!({ "args": args });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let mut driver = Driver {
            process,
            base,
            session: String::new(),
        };
        let reply = driver.post("/session", caps);
        driver.session = reply["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        driver
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        match ureq::post(&url).send_json(body) {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].take(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{url}: HTTP {code}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        ureq::get(&url)
            .call()
            .unwrap()
            .into_json::<Value>()
            .unwrap()["value"]
            .take()
    }

    fn session(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn navigate(&self, url: &str) {
        self.post(&self.session("/url"), json!({ "url": url }));
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.post(
            &self.session("/execute/sync"),
            json!({ "script": script, "args": args }),
        )
    }

    fn text(&self, id: &str) -> String {
        self.script(
            "return document.getElementById(arguments[0]).textContent;",
            json!([id]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    fn element(&self, css: &str) -> String {
        let v = self.post(
            &self.session("/element"),
            json!({ "using": "css selector", "value": css }),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.post(&self.session(&format!("/element/{e}/click")), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.post(&self.session(&format!("/element/{e}/clear")), json!({}));
        self.post(
            &self.session(&format!("/element/{e}/value")),
            json!({ "text": text }),
        );
    }

    /// Picks `paths` in the file input `css`, as a user would (chromedriver wants canonical
    /// paths).
    fn upload(&self, css: &str, paths: &[PathBuf]) {
        let files: Vec<String> = paths
            .iter()
            .map(|p| p.canonicalize().unwrap().display().to_string())
            .collect();
        let input = self.element(css);
        self.post(
            &self.session(&format!("/element/{input}/value")),
            json!({ "text": files.join("\n") }),
        );
    }

    /// Types `input`, runs, and returns the output once the run is over.
    fn generate(&self, input: &str) -> String {
        self.type_into("#input", input);
        let runs = self.script("return Number(document.body.dataset.runs || 0);", json!([]));
        self.click("#run");
        self.wait_ready("generating", |d| {
            d.script("return Number(document.body.dataset.runs || 0);", json!([])) != runs
        });
        self.text("output")
    }

    /// The page's console, for failure messages.
    fn log(&self) -> String {
        let url = format!("{}{}", self.base, self.session("/se/log"));
        ureq::post(&url)
            .send_json(json!({ "type": "browser" }))
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .map(|v| v["value"].to_string())
            .unwrap_or_default()
    }

    /// Waits until `body[data-state]` is `ready` (and `check` holds), failing on `error`.
    fn wait_ready(&self, what: &str, check: impl Fn(&Driver) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let state = self.script("return document.body.dataset.state;", json!([]));
            if state == "ready" && check(self) {
                return;
            }
            if state == "error" || Instant::now() > deadline {
                panic!(
                    "{what}: page state {state}, status {:?}, error {:?}\nbrowser log: {}",
                    self.text("status"),
                    self.text("error"),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Picks `task` in the selector as a user would, and waits until the page switched to it.
    fn choose_task(&self, task: &str) {
        self.script(
            "const s = document.getElementById('task'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change'));",
            json!([task]),
        );
        self.wait_ready(&format!("switching to {task}"), |d| {
            d.script("return document.body.dataset.task;", json!([])) == task
        });
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.get(&self.session("/screenshot"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

// -------------------------------------------------------------------------- test --

/// `(input, native prediction)` of each demo task's first example.
fn native_examples() -> Vec<(String, String, String)> {
    let demo = root().join("web/demo");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("manifest.json")).unwrap())
            .unwrap();
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_string();
            let lines =
                std::fs::read_to_string(demo.join(format!("examples/{name}.jsonl"))).unwrap();
            let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
            (
                name,
                first["input"].as_str().unwrap().to_string(),
                first["prediction"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn run_page(driver: &Driver, url: &str, backend: &str, out: &Path) -> Value {
    driver.navigate(&format!("{url}/?backend={backend}"));
    driver.wait_ready("loading", |_| true);
    let label = driver.text("backend");
    match backend {
        "cpu" => assert!(label.starts_with("CPU (wasm)"), "{label}"),
        _ => assert!(label.starts_with("WebGPU"), "asked for WebGPU, got {label}"),
    }
    let mut speeds = Vec::new();
    for (task, input, expected) in native_examples() {
        // Choose the task, type the input, run, read.
        driver.choose_task(&task);
        let output = driver.generate(&input);
        assert_eq!(
            output, expected,
            "{backend}, task {task}: browser vs native for {input:?}"
        );
        let tps: f64 = driver.text("tps").parse().unwrap();
        eprintln!(
            "web demo, {label}, {task}: {output:?} in {}, {tps} tokens/s",
            driver.text("latency")
        );
        speeds.push((task, tps));
    }
    // The fixed-length benchmark (64 → 32 tokens), for comparison with `native bench`.
    driver.click("#bench-run");
    driver.wait_ready("benchmark", |d| {
        !d.script("return document.body.dataset.benchTps || '';", json!([]))
            .as_str()
            .unwrap_or_default()
            .is_empty()
    });
    let bench: f64 = driver
        .script("return document.body.dataset.benchTps;", json!([]))
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("web demo, {label}: benchmark {}", driver.text("bench"));
    driver.screenshot(&out.join(format!("demo-{backend}.png")));
    json!({ "backend": label, "examples_tokens_per_s": speeds, "bench_64_to_32_tokens_per_s": bench })
}

/// The milliseconds in the page's "adapter generated in N ms".
fn generation_ms(driver: &Driver) -> f64 {
    let shown = driver.text("switch-time");
    shown
        .split("generated in ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no generation time in {shown:?}"))
}

/// The hypernetwork fixture whose tasks generate different text (HyperFormer++ with a task
/// projector) on its backbone, both loaded through the file inputs (on the backend the page
/// runs): choosing each task generates its adapter, whose output is PyTorch's; the slider's
/// ends generate the two tasks' outputs. Returns the generation times.
fn hypernetwork_page(driver: &Driver, out: &Path) -> Value {
    let fixtures = root().join("tests/fixtures");
    let case = fixtures.join("hyper/hyperformer++-options");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("golden.json")).unwrap()).unwrap();
    let backbone = fixtures.join(golden["base_model"].as_str().unwrap());
    let files = ["config.json", "model.safetensors", "tokenizer.json"].map(|f| backbone.join(f));
    driver.upload("#backbone-files", &files);
    driver.wait_ready("loading the hypernetwork's backbone", |d| {
        d.text("status").contains("your backbone")
    });
    let files = [
        "hypernetwork_config.json",
        "hypernetwork.safetensors",
        "task_embeddings.safetensors",
    ]
    .map(|f| case.join(f));
    driver.upload("#hyper-files", &files);
    driver.wait_ready("loading the hypernetwork", |d| {
        d.text("status").contains("hypernetwork")
    });
    // The input whose output differs between the tasks.
    let input = golden["texts"][2].as_str().unwrap();
    let mut times = serde_json::Map::new();
    let mut outputs = Vec::new();
    for task in ["rte", "sst2"] {
        driver.choose_task(task);
        times.insert(task.into(), json!(generation_ms(driver)));
        let output = driver.generate(input);
        let expected = golden["runs"][task]["greedy_text"][2].as_str().unwrap();
        assert_eq!(
            output, expected,
            "hypernetwork task {task}: page vs PyTorch"
        );
        outputs.push(output);
    }
    assert_ne!(outputs[0], outputs[1], "the fixture's tasks differ");
    let halfway = native_blend(&case, &backbone, 0.5, input);
    for (alpha, expected) in [("0", &outputs[0]), ("1", &outputs[1]), ("0.5", &halfway)] {
        let name = format!("blend(rte,sst2,{:.2})", alpha.parse::<f64>().unwrap());
        driver.script(
            "const s = document.getElementById('blend-alpha'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change'));",
            json!([alpha]),
        );
        driver.wait_ready(&name, |d| {
            d.script("return document.body.dataset.task;", json!([])) == name.as_str()
        });
        times.insert(name.clone(), json!(generation_ms(driver)));
        let output = driver.generate(input);
        assert_eq!(&output, expected, "{name}: page vs native");
        eprintln!("web demo, hypernetwork: {name}: {output:?}");
    }
    driver.screenshot(&out.join("demo-hypernetwork.png"));
    eprintln!("web demo, hypernetwork: adapter generation (ms): {times:?}");
    json!({ "backend": driver.text("backend"), "generation_ms": times })
}

/// What `native` generates (greedy, 16 new tokens as the page) for `input` through the adapter
/// of `(1 - alpha) e_rte + alpha e_sst2` of the hypernetwork in `case`.
fn native_blend(case: &Path, backbone: &Path, alpha: f32, input: &str) -> String {
    use t5_core::adapter::hyper::load_hypernetwork;
    use t5_core::generation::{generate, GenerationConfig};
    type B = t5_core::backend::Cpu;
    let device = Default::default();
    let dir = t5_core::model_dir::ModelDir::open(backbone).unwrap();
    let model = dir.load_model::<B>(&device).unwrap();
    let tokenizer = dir.load_tokenizer().unwrap();
    let hyper = load_hypernetwork::<B>(case, &dir.config, &device).unwrap();
    let raw = hyper.embeddings.raw(&["rte", "sst2"]).unwrap();
    let [a, b] = [0, 1].map(|i| raw.clone().narrow(0, i, 1));
    let set = hyper.generate_from(a * (1.0 - alpha) + b * alpha, vec!["blend".into()]);
    let adapters = t5_core::adapter::Adapters::task(&set, "blend").unwrap();
    let mut config = GenerationConfig::for_model(&dir.config);
    config.max_new_tokens = 16;
    let ids = tokenizer.encode(input).unwrap();
    let out = generate(&model, &[ids], &config, Some(&adapters)).unwrap();
    tokenizer.decode(&out[0]).unwrap()
}

#[test]
#[ignore = "needs `trunk build --release` and chromium; scripts/test runs it"]
fn the_demo_page_matches_native_output_in_headless_chromium() {
    let dist = root().join("dist");
    assert!(
        dist.join("index.html").is_file() && dist.join("t5-web_bg.wasm").is_file(),
        "{}: run `trunk build --release` first",
        dist.display()
    );
    let out = root().join("target/web-demo");
    std::fs::create_dir_all(&out).unwrap();
    let url = serve(dist);
    let driver = Driver::start();

    let mut report = serde_json::Map::new();
    for backend in ["cpu", "webgpu"] {
        report.insert(backend.into(), run_page(&driver, &url, backend, &out));
    }

    // A corrupted adapter: an error on the page, and the page keeps working.
    let bad = tempfile::tempdir().unwrap();
    let good = root().join("web/demo/adapters/sentiment");
    std::fs::copy(
        good.join("adapter_config.json"),
        bad.path().join("adapter_config.json"),
    )
    .unwrap();
    let weights = std::fs::read(good.join("adapter.safetensors")).unwrap();
    std::fs::write(
        bad.path().join("adapter.safetensors"),
        &weights[..weights.len() / 3],
    )
    .unwrap();
    let files = ["adapter_config.json", "adapter.safetensors"].map(|f| bad.path().join(f));
    driver.upload("#adapter-files", &files);
    driver.wait_ready("bad adapter", |d| !d.text("error").is_empty());
    let error = driver.text("error");
    assert!(error.contains("adapter.safetensors"), "{error}");
    driver.screenshot(&out.join("demo-bad-adapter.png"));
    let (task, input, expected) = native_examples().remove(0);
    driver.choose_task(&task);
    driver.type_into("#input", &input);
    driver.click("#run");
    driver.wait_ready("generating after the error", |d| {
        d.text("output") == expected
    });

    report.insert("hypernetwork".into(), hypernetwork_page(&driver, &out));
    std::fs::write(
        out.join("measurements.json"),
        serde_json::to_string_pretty(&Value::Object(report)).unwrap(),
    )
    .unwrap();
}
