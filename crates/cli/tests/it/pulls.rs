//! Images pulled from a registry (Debian's `docker-registry`, serving on 127.0.0.1) as the
//! kubelet's image manager pulls them, with its `Pulling` and `Pulled` events, through the
//! docker and podman runtimes.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::util::*;

/// Made by `scripts/test-images.sh`, in podman and in docker.
const ENTRY: &str = "localhost/joblet-test/entry:1";

struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    /// A registry on a free port of 127.0.0.1, keeping its images under `dir`.
    fn start(dir: &std::path::Path) -> Registry {
        let port = (TcpListener::bind("127.0.0.1:0").unwrap().local_addr())
            .unwrap()
            .port();
        let config = dir.join("registry.yml");
        let storage = dir.join("registry");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed by scripts/test.sh");
        let registry = Registry { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An image only the registry has is pulled before the container starts: `Pulling`, then
/// `Pulled` with the time and size, then the container's run; the next pod finds it present.
#[test]
fn an_image_only_a_registry_has_is_pulled_with_the_image_managers_events() {
    let dir = scratch();
    let registry = Registry::start(dir.path());

    // docker: the image pushed, then removed from the daemon.
    let image = format!("127.0.0.1:{}/joblet-test/pulled:1", registry.port);
    ok("docker", &["tag", ENTRY, &image]);
    ok("docker", &["push", "--quiet", &image]);
    ok("docker", &["rmi", &image]);
    let manifest = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pulled\nspec:\n  completions: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: main, image: \"{image}\"}}]\n"
    );
    let run = run(dir.path(), &manifest, &["--runtime", "docker", "--logs"]);
    run.expect_code(0);
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    let position = |text: &str| lines.iter().position(|l| l.contains(text));
    let pulling = position(&format!("Pulling image {image:?}"));
    let pulled = position(&format!("Successfully pulled image {image:?} in "));
    let ran = position("] from the image");
    assert!(
        pulling.is_some() && pulling < pulled && pulled < ran,
        "{}",
        run.context()
    );
    let pulled_line = lines[pulled.unwrap()];
    assert!(
        pulled_line.contains("including waiting). Image size: ")
            && pulled_line.ends_with(" bytes."),
        "{pulled_line}"
    );
    // The second pod's image was there: no second pull.
    assert_eq!(stdout.matches("Pulling image").count(), 1, "{stdout}");
    // The next run of the tests pulls it again.
    let _ = Command::new("docker").args(["rmi", &image]).output();

    // podman: the image pushed by podman; the registry, plain HTTP, is named insecure in a
    // registries.conf of the server's own.
    let image = format!("127.0.0.1:{}/joblet-test/podman-pulled:1", registry.port);
    ok(
        "podman",
        &["push", "--quiet", "--tls-verify=false", ENTRY, &image],
    );
    let conf = dir.path().join("registries.conf");
    let insecure = format!(
        "[[registry]]\nlocation = \"127.0.0.1:{}\"\ninsecure = true\n",
        registry.port
    );
    std::fs::write(&conf, insecure).unwrap();
    let mut serve = joblet();
    serve.env("CONTAINERS_REGISTRIES_CONF", &conf);
    let server = Server::start_command(
        serve,
        dir.path(),
        &dir.path().join("served"),
        &["--runtime", "podman"],
    );
    server.ok(&["create", "job", "hello", &format!("--image={image}")]);
    server.wait_complete("hello");
    let described = server.ok(&["describe", "pods", "-l", "job-name=hello"]);
    for said in [
        format!("Pulling image {image:?}"),
        format!("Successfully pulled image {image:?} in "),
        "Created container: hello".to_string(),
    ] {
        assert!(described.contains(&said), "{said:?} in\n{described}");
    }
    let _ = Command::new("podman").args(["rmi", &image]).output();
}
