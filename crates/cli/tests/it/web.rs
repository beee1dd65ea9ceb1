//! The web view of `joblet serve`, in a real headless Chromium (Debian's `chromium`).
//! Driven over Chromium's DevTools protocol; screenshots go to the target directory's
//! `web-screenshots/` (not in git), to be looked at.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve::Server;
use crate::util::scratch;

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-k", "-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: resize}
spec:
  completions: 10
  parallelism: 5
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox, command: ["sh", "-c", "echo $JOB_COMPLETION_INDEX"]}
"#;

#[test]
fn the_printed_link_signs_a_browser_in_once_and_it_lists_the_jobs_as_kubectl_does() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(INDEXED);
    server.wait_complete("resize");
    let mut browser = Browser::open(&dir.path().join("browser"), &server.web_ui);
    browser.wait_for(
        "the Job's row",
        r#"document.querySelector('tr[data-job="default/resize"]')?.innerText.includes('Complete')"#,
    );
    browser.screenshot("jobs.png");
    let dom = browser.dom();
    let row = (dom
        .split("<tr")
        .find(|r| r.contains(r#"data-job="default/resize""#)))
    .unwrap_or_else(|| panic!("{dom}"));
    assert!(
        row.contains("✓ Complete") && row.contains(">10/10<"),
        "{row}"
    );

    // The link was for one sign-in: another browser gets the sign-in form, and no Job.
    let mut other = Browser::open(&dir.path().join("other"), &server.web_ui);
    other.wait_for(
        "the sign-in form",
        r#"document.querySelector('form[action="/ui/sign-in"]') !== null"#,
    );
    other.screenshot("used-link.png");
    let again = other.dom();
    assert!(again.contains("used already"), "{again}");
    assert!(again.contains(r#"action="/ui/sign-in""#) && !again.contains("data-job"));

    // Without signing in, the script and the API refuse.
    let base = server.web_ui.split("/?").next().unwrap().to_string();
    assert!(curl(&[&format!("{base}/ui/app.js")]).ends_with("\n401"));
    assert!(curl(&[&format!("{base}/apis/batch/v1/jobs")]).ends_with("\n401"));
    assert!(curl(&[&format!("{base}/ui/api/jobs/default/resize")]).ends_with("\n401"));
    // The token pasted on the sign-in page opens a session, whose cookie the API takes.
    let token = std::fs::read_to_string(server.state.join("token")).unwrap();
    let jar = dir.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let signed = curl(&[
        "-c",
        jar,
        "-d",
        &format!("token={}", token.trim()),
        &format!("{base}/ui/sign-in"),
    ]);
    assert!(signed.ends_with("\n303"), "{signed}");
    let listed = curl(&["-b", jar, &format!("{base}/apis/batch/v1/jobs")]);
    assert!(
        listed.ends_with("\n200") && listed.contains(r#""name":"resize""#),
        "{listed}"
    );
    let wrong = curl(&["-d", "token=nope", &format!("{base}/ui/sign-in")]);
    assert!(
        wrong.ends_with("\n401") && wrong.contains("not this server's token"),
        "{wrong}"
    );
}

/// The lines of JSON a stream sent within `seconds` (curl gives up then; the stream goes on).
fn stream_lines(args: &[&str], seconds: u32) -> Vec<serde_json::Value> {
    let output = Command::new("curl")
        .args(["-k", "-s", "-N", "--max-time", &seconds.to_string()])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    (text.lines())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn the_pages_stream_of_a_job_sends_it_and_its_pods_then_their_changes() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(INDEXED);
    server.wait_complete("resize");
    let base = server.web_ui.split("/?").next().unwrap().to_string();
    let token = std::fs::read_to_string(server.state.join("token")).unwrap();
    let bearer = format!("Authorization: Bearer {}", token.trim());
    let url = format!("{base}/ui/api/jobs/default/resize");
    // The Job first, then its ten pods as listed, with their indexes and times.
    let lines = stream_lines(&["-H", &bearer, &url], 2);
    assert_eq!(lines[0]["job"]["metadata"]["name"], "resize", "{lines:?}");
    assert_eq!(lines.last().unwrap(), &serde_json::json!({"listed": true}));
    let pods: Vec<&serde_json::Value> = (lines.iter())
        .filter(|l| l["listing"] == true)
        .flat_map(|l| l["pods"].as_array().unwrap())
        .collect();
    let mut indexes: Vec<u64> = pods.iter().map(|p| p["index"].as_u64().unwrap()).collect();
    indexes.sort();
    assert_eq!(indexes, (0..10).collect::<Vec<_>>(), "{pods:?}");
    for pod in &pods {
        assert_eq!(pod["phase"], "Succeeded", "{pod}");
        assert!(
            pod["end"].as_i64().unwrap() >= pod["start"].as_i64().unwrap(),
            "{pod}"
        );
    }

    // Live: two pods that run, then the Job suspended: its pods end and it says so.
    server.apply(&crate::util::job(
        "slow",
        "  parallelism: 2\n  completions: 4",
        "sleep 300",
    ));
    crate::serve::wait_for(
        "two running pods",
        std::time::Duration::from_secs(20),
        || {
            let pods = server.json(&["get", "pods", "-l", "batch.kubernetes.io/job-name=slow"]);
            let phases = pods["items"].as_array().unwrap().iter();
            phases.filter(|p| p["status"]["phase"] == "Running").count() == 2
        },
    );
    let url = format!("{base}/ui/api/jobs/default/slow");
    let watching = std::thread::spawn(move || stream_lines(&["-H", &bearer, &url], 6));
    std::thread::sleep(std::time::Duration::from_secs(1));
    server.ok(&[
        "patch",
        "job",
        "slow",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    let lines = watching.join().unwrap();
    let listed = lines.iter().position(|l| l["listed"] == true).unwrap();
    let running: Vec<&serde_json::Value> = lines[..listed]
        .iter()
        .flat_map(|l| l["pods"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(running.len(), 2, "{lines:?}");
    assert!(
        running
            .iter()
            .all(|p| p["phase"] == "Running" && p["end"].is_null()),
        "{lines:?}"
    );
    let later = &lines[listed + 1..];
    for pod in &running {
        let ended = (later.iter())
            .flat_map(|l| l["pods"].as_array().into_iter().flatten())
            .rfind(|p| p["name"] == pod["name"])
            .unwrap_or_else(|| panic!("no change of {}: {lines:?}", pod["name"]));
        assert!(
            ended["end"].as_i64().unwrap() >= pod["start"].as_i64().unwrap(),
            "{ended}"
        );
        assert_ne!(ended["phase"], "Running", "{ended}");
    }
    assert!(
        later.iter().any(|l| l["job"]["spec"]["suspend"] == true),
        "{lines:?}"
    );
}

const ONE_INDEX_FAILS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: grid}
spec:
  completions: 10
  parallelism: 10
  completionMode: Indexed
  backoffLimitPerIndex: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox, command: ["sh", "-c", "test $JOB_COMPLETION_INDEX != 3"]}
"#;

#[test]
fn a_jobs_page_draws_a_cell_per_index_a_timeline_and_its_events() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(ONE_INDEX_FAILS);
    server.ok(&[
        "wait",
        "--for=condition=failed",
        "job/grid",
        "--timeout=30s",
    ]);
    // The link's fragment survives the sign-in's redirect: straight to the Job's page.
    let page = format!("{}#/jobs/default/grid", server.web_ui);
    let mut browser = Browser::open(&dir.path().join("browser"), &page);
    browser.wait_for(
        "the grid, the timeline and the Job's last event",
        "document.querySelector('#timeline-summary') !== null && [...document.querySelectorAll('td')].some(td => td.textContent === 'FailedIndexes')",
    );
    browser.screenshot("job-grid.png");
    let dom = browser.dom();
    assert!(
        dom.contains(
            r#"<p id="grid-summary">10 cells: 0 pending, 0 running, 9 succeeded, 1 failed</p>"#
        ),
        "{dom}"
    );
    assert!(dom.contains("Failed (FailedIndexes)"), "{dom}");
    // The failed index is also a link to its pod.
    assert!(
        dom.contains(r##"Failed: <a href="#/pods/default/grid-3-"##),
        "{dom}"
    );
    assert!(dom.contains("backoffLimitPerIndex 1"), "{dom}");
    // The timeline has a row per index and a bar per pod: index 3 ran twice.
    assert!(
        dom.contains(r#"<p id="timeline-summary">10 rows, 11 pods, over "#),
        "{dom}"
    );
    for reason in ["SuccessfulCreate", "FailedIndexes"] {
        assert!(
            dom.contains(&format!("<td>{reason}</td>")),
            "{reason}: {dom}"
        );
    }
    // The keyboard goes from cell to cell, naming each as hovering does, and opens a pod.
    browser.eval("document.querySelector('.grid canvas[tabindex]').focus()");
    for _ in 0..4 {
        browser.press("ArrowRight", 39);
    }
    browser.wait_for(
        "index 3 named",
        "document.querySelector('.tip').textContent.startsWith('index 3: failed (backoffLimitPerIndex); 2 attempt(s): grid-3-')",
    );
    browser.press("Enter", 13);
    browser.wait_for(
        "index 3's last pod",
        "location.hash.startsWith('#/pods/default/grid-3-') && document.body.innerText.includes('Phase')",
    );
}

#[test]
fn a_pods_page_shows_its_containers_exit_codes_and_log() {
    let dir = scratch();
    let server = Server::start(dir.path());
    server.apply(&crate::util::job(
        "talks",
        "",
        "echo first line; echo second line; exit 0",
    ));
    server.wait_complete("talks");
    let pods = server.json(&["get", "pods", "-l", "batch.kubernetes.io/job-name=talks"]);
    let pod = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Driven over DevTools, not loaded once: the log is a stream that comes when it comes.
    let page = format!("{}#/pods/default/{pod}", server.web_ui);
    let mut browser = Browser::open(&dir.path().join("browser"), &page);
    browser.wait_for(
        "the log",
        r#"document.querySelector('pre.log[data-container="main"]')?.textContent === 'first line\nsecond line\n'"#,
    );
    let row = browser.eval("document.querySelector('tbody tr').innerText");
    assert_eq!(row, "main\tmain\tterminated\t0\tCompleted\t0");
}

/// A headless Chromium driven over the DevTools protocol: the page's JavaScript evaluated
/// as the user's clicks and reads.
struct Browser {
    child: std::process::Child,
    socket: tungstenite::WebSocket<std::net::TcpStream>,
    next_id: u64,
}

impl Browser {
    fn open(profile: &Path, url: &str) -> Browser {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--ignore-certificate-errors"])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--window-size=1280,800")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("chromium runs (scripts/test.sh installs Debian's chromium)");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("DevTools listening on ws://") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "chromium gave no DevTools address"
            );
        }
        // Chromium's later messages go nowhere rather than fill a pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let address = line
            .split("ws://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        // The page's own target, from the browser's target list.
        let page = loop {
            let list = Command::new("curl")
                .args(["-s", &format!("http://{address}/json/list")])
                .output()
                .unwrap();
            let body = String::from_utf8_lossy(&list.stdout);
            let targets: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let page = (targets.as_array().into_iter().flatten())
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string));
            if let Some(page) = page {
                break page;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let stream = std::net::TcpStream::connect(&address).unwrap();
        let (socket, _) = tungstenite::client(page.as_str(), stream).unwrap();
        Browser {
            child,
            socket,
            next_id: 0,
        }
    }

    /// Sends a DevTools command; its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(request.to_string()))
            .unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let mut reply: serde_json::Value = serde_json::from_str(text).unwrap();
            if reply["id"] == id {
                return reply["result"].take();
            }
        }
    }

    /// The value of a JavaScript expression in the page (awaited when a promise).
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({"expression": expression, "returnByValue": true,
            "awaitPromise": true});
        self.call("Runtime.evaluate", params)["result"]["value"].take()
    }

    /// Waits until the expression is true in the page.
    fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.eval(expression) != serde_json::Value::Bool(true) {
            let dom = self.eval("document.body.innerText");
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {dom}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The page's HTML as it is now.
    fn dom(&mut self) -> String {
        let html = self.eval("document.documentElement.outerHTML");
        html.as_str().unwrap_or_default().to_string()
    }

    /// Saves what the page shows as `name` under the target directory's
    /// `web-screenshots/`, to be looked at.
    fn screenshot(&mut self, name: &str) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", serde_json::json!({}));
        let data = shot["data"].as_str().unwrap_or_default();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
        std::fs::create_dir_all(&screenshots).unwrap();
        std::fs::write(screenshots.join(name), png).unwrap();
    }

    /// Clicks the button with this text.
    /// A key pressed and released in the focused element.
    fn press(&mut self, key: &str, code: u32) {
        for kind in ["rawKeyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                serde_json::json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}),
            );
        }
    }

    fn click(&mut self, text: &str) {
        let clicked = self.eval(&format!(
            "(() => {{ const b = [...document.querySelectorAll('button')].find(b => b.textContent === {text:?}); if (b) b.click(); return !!b; }})()"
        ));
        assert_eq!(clicked, serde_json::Value::Bool(true), "no {text:?} button");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_job_created_by_kubectl_shows_up_live_and_the_page_suspends_and_deletes_it() {
    let dir = scratch();
    let server = Server::start(dir.path());
    let mut browser = Browser::open(&dir.path().join("browser"), &server.web_ui);
    browser.wait_for("the Jobs list", "document.querySelector('#jobs') !== null");
    // Created after the page was drawn: the watch brings it.
    server.apply(&crate::util::job(
        "slow",
        "  parallelism: 2\n  completions: 4",
        "sleep 300",
    ));
    browser.wait_for(
        "the new Job's row",
        r#"document.querySelector('tr[data-job="default/slow"]')?.innerText.includes('Running')"#,
    );
    browser.eval(r##"location.hash = "#/jobs/default/slow""##);
    browser.wait_for(
        "two running cells",
        "document.querySelector('#grid-summary')?.textContent.includes('2 running')",
    );
    // Views left close their watches: after many page changes (more than a browser's six
    // connections to one server), the page still gets its changes.
    for _ in 0..8 {
        browser.eval(r##"location.hash = "#/""##);
        browser.wait_for("the list", "document.querySelector('#jobs') !== null");
        browser.eval(r##"location.hash = "#/jobs/default/slow""##);
        browser.wait_for(
            "the grid",
            "document.querySelector('#grid-summary')?.textContent.includes('2 running')",
        );
    }
    browser.click("Suspend");
    // As kubectl sees it: suspended, its pods gone.
    crate::serve::wait_for(
        "the Job to be suspended with no pod",
        std::time::Duration::from_secs(20),
        || {
            let job = server.json(&["get", "job", "slow"]);
            job["spec"]["suspend"] == true && job["status"]["active"].is_null()
        },
    );
    browser.wait_for(
        "the Resume button",
        "[...document.querySelectorAll('button')].some(b => b.textContent === 'Resume')",
    );
    // Deleting asks first.
    browser.click("Delete…");
    browser.wait_for(
        "the question",
        "document.body.innerText.includes('Delete Job slow and its pods?')",
    );
    browser.click("Yes, delete");
    browser.wait_for(
        "the Job to be gone",
        "document.body.innerText.includes('does not exist')",
    );
    crate::serve::wait_for(
        "kubectl to see no Job",
        std::time::Duration::from_secs(10),
        || server.json(&["get", "jobs"])["items"] == serde_json::json!([]),
    );
}
