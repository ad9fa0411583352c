"""Sealed network (issue #7): nothing leaves the machine, and nothing needs to.

* `slm ingest`, `slm ask` and the UI (`slm ui` driven by Chromium) run inside a network
  namespace whose only interface is loopback (``unshare -n``), and still work.
* The test-wide guard (tests/hardening/netguard.py, installed by tests/conftest.py)
  refuses any connection past loopback in the test process, and fails the test that
  tried even when the code swallowed the error.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.hardening import netguard

SLM = str(Path(sys.executable).with_name("slm"))
CHROMIUM = Path("/usr/bin/chromium")
HANG_S = 300  # hang guards, not performance bounds
QUESTION = "In which province was the SAIBK strain isolated?"
DOCS = {
    "law.txt": "GOVERNING LAW\n\nThis Agreement shall be governed by the laws of the State of Texas. Any dispute "
               "shall be resolved in the courts of Dallas County.\n",
    "virus.md": "# Virology\n\nThe infectious bronchitis virus causes economic losses to the poultry industry. "
                "The strain SAIBK was isolated in Sichuan province in 2005.\n\n## Methods\n\nThe genome was "
                "sequenced with RT-PCR and assembled from overlapping fragments.\n",
    "finance.txt": "Net sales for the quarter were 81.8 billion dollars, down 1 percent year over year. "
                   "Services revenue reached a record 21.2 billion dollars.\n",
}

# Run first in the namespace: only loopback exists, and the outside is unreachable (not merely refused).
SEALED_CHECK = """
import errno, socket, sys
names = [n for _, n in socket.if_nameindex()]
if names != ["lo"]:
    sys.exit(f"interfaces in the namespace: {names}")
for address in [("10.255.255.1", 80), ("8.8.8.8", 53)]:
    try:
        socket.create_connection(address, timeout=3).close()
    except OSError as exc:
        if exc.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            sys.exit(f"{address}: {exc!r}, not 'network unreachable'")
    else:
        sys.exit(f"reached {address} from the namespace")
"""


def sealed(argv: list[str], cwd: Path, timeout: float = HANG_S) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a new network namespace with only loopback up (checked before it starts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_")}
    env.update(SEALED_PY=sys.executable, SEALED_CHECK=SEALED_CHECK)
    script = 'ip link set lo up && "$SEALED_PY" -c "$SEALED_CHECK" && exec "$@"'
    return subprocess.run(["unshare", "--net", "sh", "-c", script, "sh", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def namespace() -> None:
    """Skip (saying why) where this user may not create a network namespace; as root (CI) never skip."""
    give_up = pytest.fail if os.geteuid() == 0 else pytest.skip
    if not (shutil.which("unshare") and shutil.which("ip")):
        give_up("needs unshare (util-linux) and ip (iproute2): apt-get install util-linux iproute2")
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        give_up(f"cannot create a network namespace here (needs root or user namespaces): {probe.stderr.strip()}")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sealed")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def ingested(namespace: None, work: Path) -> dict[str, object]:
    """`slm ingest` in the namespace (the real MiniLM embedder)."""
    out = sealed([SLM, "ingest", str(work / "docs"), "--index", str(work / "index"), "--json", "--no-progress"], work)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


# -- the commands in a sealed namespace -------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
def test_ingest_in_a_sealed_namespace(ingested: dict[str, object], work: Path) -> None:
    assert ingested["ok"] and ingested["counts"]["added"] == len(DOCS), ingested  # type: ignore[index]
    assert (work / "index" / "manifest.json").is_file() and (work / "index" / "vectors.faiss").is_file()


@pytest.mark.integration
@pytest.mark.slow
def test_ask_in_a_sealed_namespace(ingested: dict[str, object], work: Path) -> None:
    """`slm ask` with the real GGUF: retrieval, generation and citation checks, all offline."""
    out = sealed([SLM, "ask", QUESTION, "--index", str(work / "index"), "--json"], work)
    assert out.returncode == 0, out.stdout + out.stderr
    answer = json.loads(out.stdout)
    assert answer["hits"][0]["source"] == "virus.md" and "Sichuan" in answer["hits"][0]["text"], answer["hits"]
    assert answer["mode"] == "generate" and answer["timings"]["completion_tokens"] > 0, answer["timings"]
    if not answer["abstained"]:  # the 135M model's wording varies; where its support comes from must not
        assert answer["citations"] and {c["source"] for c in answer["citations"]} == {"virus.md"}, answer


# Inside the namespace: start `slm ui`, drive it with Chromium, print what the answer shows.
# Launch flags as in tests/ui/test_browser.py.
UI_DRIVER = textwrap.dedent(r"""
    import json, subprocess, sys, time, urllib.request
    from playwright.sync_api import sync_playwright
    slm, index, question, log = sys.argv[1:5]
    url = "http://127.0.0.1:8501"  # the namespace has ports of its own
    with open(log, "wb") as out:
        ui = subprocess.Popen([slm, "ui", "--index", index, "--port", "8501", "--domain", "general"],
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if ui.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"slm ui did not start (exit {ui.poll()})")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        settled = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_text("Quotes only (extractive, no generation)").click()
            page.wait_for_function(settled)
            page.get_by_placeholder("Ask a question about your documents").fill(question)
            page.keyboard.press("Enter")
            answer = page.locator('[data-testid="stChatMessage"]').last
            answer.get_by_text("Sources", exact=True).wait_for()
            page.wait_for_function(settled)
            print(json.dumps({"answer": answer.inner_text()}))
            browser.close()
    finally:
        ui.terminate()
        try:
            ui.wait(15)
        except subprocess.TimeoutExpired:
            ui.kill()
""")


@pytest.mark.integration
@pytest.mark.slow
def test_ui_in_a_sealed_namespace(ingested: dict[str, object], work: Path) -> None:
    """The Streamlit app and the browser, both in the namespace: an answer with its citation appears."""
    pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: `apt-get install chromium`")
    log = work / "ui.log"
    out = sealed([sys.executable, "-c", UI_DRIVER, SLM, str(work / "index"), QUESTION, str(log)], work)
    ui_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + ui_log
    shown = json.loads(out.stdout.strip().splitlines()[-1])["answer"]
    assert "Sichuan" in shown and "virus.md" in shown, shown
    assert "Traceback" not in ui_log, ui_log


# -- the test-wide guard ----------------------------------------------------------------------------

def _has_ipv6() -> bool:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
        return True
    except OSError:
        return False


OUTSIDE = [("10.255.255.1", 80), ("8.8.8.8", 53)] + ([("2001:4860:4860::8888", 53)] if _has_ipv6() else [])


def _listener(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen()
    return server


def test_guard_refuses_addresses_past_loopback() -> None:
    assert netguard.installed()
    for address in OUTSIDE:
        with pytest.raises(netguard.NetworkBlocked):
            socket.create_connection(address, timeout=1)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(netguard.NetworkBlocked):
            s.connect_ex(address)
        with socket.socket(family, socket.SOCK_DGRAM) as s, pytest.raises(netguard.NetworkBlocked):
            s.sendto(b"\0" * 12, address)  # a DNS query would be this
    with pytest.raises(netguard.NetworkBlocked):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(netguard.NetworkBlocked):
        socket.gethostbyname("pypi.org")
    assert not issubclass(netguard.NetworkBlocked, OSError), "must not pass for 'server down' in except OSError"
    blocked = netguard.take_blocked()  # taken here, so that this test itself does not fail at teardown
    assert len(blocked) == 3 * len(OUTSIDE) + 2 and any("10.255.255.1" in b for b in blocked), blocked


def test_guard_allows_loopback_and_unix_sockets(tmp_path: Path) -> None:
    with _listener() as server:
        port = server.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            socket.create_connection((host, port), timeout=5).close()
    if _has_ipv6():
        try:
            server6 = _listener(socket.AF_INET6, "::1")
        except OSError as exc:  # no ::1 here (IPv6 disabled)
            assert exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT), exc
        else:
            with server6:
                socket.create_connection(("::1", server6.getsockname()[1]), timeout=5).close()
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as unix_server:
        unix_server.bind(path)
        unix_server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
    assert netguard.is_loopback("127.8.9.10") and netguard.is_loopback("::ffff:127.0.0.1")
    assert not netguard.is_loopback("0.0.0.0") and not netguard.is_loopback("192.168.1.1")
    # The machine's own addresses stay on the machine (test_serve connects to them to see them refused).
    own = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
           if a.family in (socket.AF_INET, socket.AF_INET6)}
    assert all(netguard.is_local(a) for a in own) and not any(netguard.is_local(a) for a, _ in OUTSIDE)
    assert netguard.take_blocked() == []


def test_guard_survives_pytest_socket_resets() -> None:
    """pytest-socket (langchain-tests' plugin) puts 'the originals' back after each test: ours."""
    pytest_socket = pytest.importorskip("pytest_socket")
    pytest_socket._remove_restrictions()
    pytest_socket.socket_allow_hosts(["127.0.0.1", "8.8.8.8"])  # even a test that allows an outside host
    try:
        with pytest.raises(netguard.NetworkBlocked):
            socket.create_connection(("8.8.8.8", 53), timeout=1)
    finally:
        pytest_socket._remove_restrictions()
    assert netguard.installed()
    assert len(netguard.take_blocked()) == 1


SWALLOWING_TEST = """
import socket

def test_swallows_the_error():
    try:
        socket.create_connection(("10.255.255.1", 80), timeout=1)
    except Exception:
        pass  # e.g. a fallback that hides the attempt

def test_talks_to_loopback_only():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=5).close()
"""


def test_a_test_that_swallows_the_error_still_fails(tmp_path: Path) -> None:
    """The conftest fixture fails any test that tried, even if the code caught NetworkBlocked."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import _no_network  # noqa: F401\n")
    (tmp_path / "test_probe.py").write_text(SWALLOWING_TEST)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          str(tmp_path / "test_probe.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=HANG_S)
    report = out.stdout + out.stderr
    assert out.returncode == 1, report
    assert "ERROR at teardown of test_swallows_the_error" in report and "10.255.255.1" in report, report
    assert "2 passed, 1 error" in report, report  # the loopback-only test is not touched
