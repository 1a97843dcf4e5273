"""``nbmedic run --scheduler``: the same batch on a real Dask cluster (LocalCluster on 127.0.0.1, worker
processes), compared with the local process pool; lost workers, the environment variable, errors."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.execute import RunResult, run_notebook
from nbmedic.execute import cluster as cluster_module
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.options import RunOptions
from tests.nbfactory import code, notebook, write
from tests.runhelpers import make_nb, read_out, text_of

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux only")

Run = Callable[..., tuple[int, str, str]]

FIRST = "print('first cell ran')"
CRASH = "import ctypes\n\ndef read_null():\n    return ctypes.string_at(0)\n\nread_null()"
HANG = "import time\n\ndef wait_for_data():\n    time.sleep(60)\n\nwait_for_data()"
GROW = ("import time\nchunks = []\nwhile True:\n    chunks.append(b'\\x01' * (32 * 2**20))\n"
        "    time.sleep(0.02)")


@dataclass
class Cluster:
    address: str
    client: Any

    def worker_pids(self) -> set[int]:
        return set(self.client.run(os.getpid).values())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two single-threaded worker processes; the scheduler gives up on a task at its first lost worker
    (allowed-failures 0), so nbmedic's own resubmission is what retries here."""
    home = tmp_path_factory.mktemp("cluster-jupyter")
    with pytest.MonkeyPatch.context() as mp:  # the workers' kernels use a private Jupyter home too
        for name in ("data", "runtime", "config"):
            (home / name).mkdir()
            mp.setenv(f"JUPYTER_{name.upper()}_DIR", str(home / name))
        mp.setenv("JUPYTER_PATH", str(home / "data"))
        mp.delenv("JPY_SESSION_NAME", raising=False)
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
            scheduler_kwargs={"allowed_failures": 0}, silence_logs=logging.CRITICAL)
        client = distributed.Client(local, set_as_default=False)
        try:
            yield Cluster(local.scheduler_address, client)
        finally:
            client.close()
            local.close()


def _doc(run_cli: Run, *args: str) -> tuple[int, dict[str, Any], str]:
    code_, out, err = run_cli("run", "--format", "json", *args)
    assert code_ in (0, 1), err
    return code_, json.loads(out), err


def _masked(text: str) -> str:
    """Figures and addresses vary from run to run; the words do not."""
    return re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?", "#", text)


def _findings(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What each finding says, without what varies between two runs of one notebook (figures, and the
    details after the first clause: e.g. by how many KiB the cells before an RN101 grew)."""
    return sorted((Path(f["path"]).name, f["code"], f["severity"], f["cell"],
                   _masked(f["message"].split(";")[0]),
                   sorted(f["evidence"]), f["evidence"].get("signal"), f["evidence"].get("cell_function"),
                   f["evidence"].get("killed_by_watchdog")) for f in doc["findings"])


def _runs(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(Path(r["path"]).name, r["status"], r["exit_code"], [c["status"] for c in r["cells"]],
             Path(r["output"]).name) for r in doc["runs"]]


def _output(out: dict[str, Any]) -> Any:
    if out["output_type"] == "stream":
        return ("stream", out["name"], "".join(out["text"]))
    if out["output_type"] == "error":
        return ("error", out["ename"], _masked(out["evalue"].split(";")[0]))
    return (out["output_type"], out.get("data"))


def _saved(path: Path) -> list[tuple[Any, ...]]:
    nb = read_out(path)
    return [(c["cell_type"], c["source"], [_output(o) for o in c.get("outputs", [])],
             c["metadata"].get("nbmedic", {}).get("status")) for c in nb["cells"]]


def test_a_batch_on_the_cluster_equals_the_local_pool(run_cli: Run, tmp_path: Path, cluster: Cluster,
                                                      jupyter_home: dict[str, Path]) -> None:
    paths = [
        make_nb(tmp_path, "x = 6 * 7", "print(x)", name="healthy.ipynb"),
        make_nb(tmp_path, FIRST, CRASH, "print('never')", name="crash.ipynb"),
        make_nb(tmp_path, "from IPython.display import HTML\nHTML('<b>hi</b>')", name="display.ipynb"),
        make_nb(tmp_path, FIRST, HANG, "print('never')", name="hang.ipynb", nbmedic={"cell_timeout": 2}),
        make_nb(tmp_path, FIRST, GROW, "print('never')", name="memory.ipynb"),
    ]
    common = ("--memory-limit", "300M", *map(str, paths))
    workers_before = cluster.worker_pids()
    code_local, local, _ = _doc(run_cli, "-j", "2", "--output-dir", str(tmp_path / "local"), *common)
    code_dask, dask, _ = _doc(run_cli, "--scheduler", cluster.address, "--output-dir", str(tmp_path / "dask"),
                              *common)
    assert code_local == code_dask == 1
    assert _findings(dask) == _findings(local)
    assert _runs(dask) == _runs(local)
    failing = {(Path(f["path"]).stem, f["code"], f["cell"]) for f in dask["findings"]}
    assert failing == {("crash", "RN102", 1), ("hang", "RN110", 1), ("memory", "RN101", 1)}
    assert [r["status"] for r in dask["runs"]] == ["ok", "died", "ok", "timeout", "died"]
    for path in paths:
        written = tmp_path / "dask" / path.name
        assert [r["output"] for r in dask["runs"] if Path(r["path"]) == path] == [str(written)]
        assert _saved(written) == _saved(tmp_path / "local" / path.name)
    assert text_of(read_out(tmp_path / "dask" / "healthy.ipynb")["cells"][1]) == "42\n"
    # every notebook was a task of its own, with a readable key; no notebook took its worker down
    keys = {msg["key"] for _, msg in cluster.client.get_events(cluster_module.EVENT_TOPIC)}
    for i, path in enumerate(paths):
        assert any(re.fullmatch(rf"nbmedic-run-{path.stem}-{i}-[0-9a-f]{{8}}", key) for key in keys), keys
    assert cluster.worker_pids() == workers_before


def _worker_killer(tmp_path: Path, name: str, *, once: bool) -> Path:
    """A notebook whose cell SIGKILLs the Dask worker running it (the ancestor that is a child of this test
    process, where the nannies live): only on its first run with ``once``, else every time."""
    marker = tmp_path / f"{name}.started"
    kill = ("import os, signal, time, psutil\n"
            f"marker = {str(marker)!r}\n"
            f"first = not os.path.exists(marker)\n"
            "with open(marker, 'a') as fh:\n"
            "    fh.write(f'{os.getpid()}\\n')\n"
            f"if first or {not once}:\n"
            "    worker = next(p for p in psutil.Process().parents() if p.ppid() == " f"{os.getpid()})\n"
            "    os.kill(worker.pid, signal.SIGKILL)\n"
            "    time.sleep(30)\n")
    return make_nb(tmp_path, FIRST, kill, "print('survived')", name=name)


def _gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_a_lost_worker_is_retried_once_elsewhere(run_cli: Run, tmp_path: Path, cluster: Cluster,
                                                  jupyter_home: dict[str, Path]) -> None:
    once = _worker_killer(tmp_path, "once.ipynb", once=True)
    always = _worker_killer(tmp_path, "always.ipynb", once=False)
    healthy = make_nb(tmp_path, "print('fine')", name="healthy.ipynb")
    try:
        code_, doc, err = _doc(run_cli, "--scheduler", cluster.address, str(once), str(always), str(healthy))
    finally:
        cluster.client.wait_for_workers(2, timeout=60)  # the nannies bring the killed workers back
    assert code_ == 1, err
    by_path = {Path(r["path"]).name: r for r in doc["runs"]}
    found = {(Path(f["path"]).name, f["code"], f["severity"]): f for f in doc["findings"]}
    assert sorted(found) == [("always.ipynb", "RN180", "error"), ("once.ipynb", "RN180", "warning")]
    # each start of a worker-killer notebook wrote its kernel's pid to <name>.ipynb.started
    starts = {name: [int(line) for line in (tmp_path / f"{name}.ipynb.started").read_text().split()]
              for name in ("once", "always")}
    retried = found["once.ipynb", "RN180", "warning"]["evidence"]
    # twice, as a rule: lost, then retried; a third start when the retry's finished result was lost with its
    # worker (killed by always.ipynb) before the client gathered it, and the scheduler computed it again
    assert retried["attempts"] == len(starts["once"]) >= 2 and retried["scheduler"] == cluster.address
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", retried["worker"])
    assert "died" in retried["error"]
    assert by_path["once.ipynb"]["status"] == "ok"
    assert text_of(read_out(tmp_path / "once.out.ipynb")["cells"][2]) == "survived\n"
    lost = found["always.ipynb", "RN180", "error"]
    assert lost["evidence"]["attempts"] == len(starts["always"]) == 2 and "KilledWorker" in lost["message"]
    assert by_path["always.ipynb"]["status"] == "died" and by_path["always.ipynb"]["output"] is None
    assert not (tmp_path / "always.out.ipynb").exists()
    assert by_path["healthy.ipynb"]["status"] == "ok"
    assert text_of(read_out(tmp_path / "healthy.out.ipynb")["cells"][0]) == "fine\n"
    # the kernels orphaned by their workers' deaths did not outlive them
    assert all(_gone(pid) for pid in starts["once"] + starts["always"])


def test_scheduler_local_starts_and_closes_a_cluster(run_cli: Run, tmp_path: Path,
                                                     jupyter_home: dict[str, Path]) -> None:
    nb = make_nb(tmp_path, "print('on a local cluster')", name="plain.ipynb")
    once = _worker_killer(tmp_path, "once.ipynb", once=True)
    children_before = {p.pid for p in psutil.Process().children()}
    code_, doc, err = _doc(run_cli, "--scheduler", "local", str(nb), str(once))
    assert code_ == 0, err
    assert re.search(r"^nbmedic: Dask dashboard at http://127\.0\.0\.1:\d+/status", err, re.MULTILINE), err
    assert text_of(read_out(tmp_path / "plain.out.ipynb")["cells"][0]) == "on a local cluster\n"
    # the cluster's scheduler rescheduled the lost notebook by itself (once), and nbmedic saw it
    [f] = doc["findings"]
    assert f["code"] == "RN180" and f["severity"] == "warning" and f["evidence"]["attempts"] == 2
    assert text_of(read_out(tmp_path / "once.out.ipynb")["cells"][2]) == "survived\n"
    deadline = time.monotonic() + 20
    while _new_children(children_before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _new_children(children_before) == []  # the cluster's worker processes are gone


def _new_children(before: set[int]) -> list[str]:
    """Processes started by this one since ``before`` (multiprocessing's resource tracker, which lives as
    long as this process, aside)."""
    out = []
    for child in psutil.Process().children():
        try:
            if child.pid not in before and child.status() != psutil.STATUS_ZOMBIE:
                cmdline = " ".join(child.cmdline())
                if "resource_tracker" not in cmdline:
                    out.append(cmdline)
        except psutil.NoSuchProcess:
            continue
    return out


def test_the_environment_variable_names_the_scheduler(run_cli: Run, tmp_path: Path, cluster: Cluster,
                                                      jupyter_home: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    nb = write(tmp_path / "where.ipynb", notebook(code(
        "import psutil\nprint(' '.join(str(p.pid) for p in psutil.Process().parents()))")))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    code_, doc, err = _doc(run_cli, str(nb))
    assert code_ == 0, err
    assert [r["status"] for r in doc["runs"]] == ["ok"]
    ancestors = [int(pid) for pid in text_of(read_out(tmp_path / "where.out.ipynb")["cells"][0]).split()]
    assert set(ancestors) & cluster.worker_pids()  # the kernel ran under a Dask worker (forked by a template)
    # started the normal way, the kernel is the worker's own child
    code_, doc, err = _doc(run_cli, "--no-fork", str(nb))
    assert code_ == 0, err
    ancestors = [int(pid) for pid in text_of(read_out(tmp_path / "where.out.ipynb")["cells"][0]).split()]
    assert ancestors[0] in cluster.worker_pids()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_scheduler_is_a_one_line_usage_error(run_cli: Run, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 2.0)
    nb = make_nb(tmp_path, "print(1)")
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    code_, out, err = run_cli("run", "--scheduler", address, str(nb))
    assert code_ == 2 and out == ""
    assert err.startswith(f"nbmedic: error: --scheduler {address}: no Dask scheduler answered within 2 s")
    assert err.count("\n") == 1
    assert time.monotonic() - started < 15
    assert not (tmp_path / "nb.out.ipynb").exists()
    code_, out, err = run_cli("run", "--scheduler", "127.0.0.1", str(nb))  # no port: not an address
    assert (code_, out) == (2, "")
    assert err.startswith("nbmedic: error: --scheduler 127.0.0.1: not a Dask scheduler address") and \
        err.count("\n") == 1


def test_without_dask_the_error_names_the_extra(run_cli: Run, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails as if not installed
    nb = make_nb(tmp_path, "print(1)")
    code_, out, err = run_cli("run", "--scheduler", "local", str(nb))
    assert (code_, out) == (2, "")
    assert err == "nbmedic: error: --scheduler needs dask.distributed: pip install 'nbmedic[dask]'\n"


def test_task_keys_are_readable_and_unique_per_batch() -> None:
    key = cluster_module.task_key("reports/sales Q1.ipynb", 3, "ab12cd34")
    assert key == "nbmedic-run-sales_Q1-3-ab12cd34"
    assert cluster_module.task_key("a.ipynb", 0, "ab12cd34", retry=1) == "nbmedic-run-a-0-ab12cd34-retry1"


def test_the_api_returns_results_in_job_order_and_reports_each(tmp_path: Path, cluster: Cluster,
                                                               jupyter_home: dict[str, Path]) -> None:
    slow = make_nb(tmp_path, "import time; time.sleep(4); print('slow')", name="slow.ipynb")  # outlasts two quick runs under load
    quick = make_nb(tmp_path, "print('quick')", name="quick.ipynb")
    unwritable = str(tmp_path / "no-such-folder" / "quick.out.ipynb")
    jobs = [RunJob(str(slow), RunOptions(), output=str(tmp_path / "slow.out.ipynb")),
            RunJob(str(quick), RunOptions(), output=None),  # no output: nothing written, as locally
            RunJob(str(quick), RunOptions(), output=unwritable)]
    done: list[tuple[int, str]] = []
    results = cluster_module.execute_on_cluster(jobs, cluster.address,
                                                on_done=lambda i, r: done.append((i, r.path)))
    assert [r.path for r in results] == [str(slow), str(quick), str(quick)]
    assert [r.status for r in results] == ["ok", "ok", "failed"]
    assert sorted(done) == [(0, str(slow)), (1, str(quick)), (2, str(quick))]
    assert done[-1] == (0, str(slow))  # reported as each finished: the slow one last
    assert results[0].output == str(tmp_path / "slow.out.ipynb") and results[1].output is None
    assert text_of(read_out(tmp_path / "slow.out.ipynb")["cells"][0]) == "slow\n"
    assert not (tmp_path / "quick.out.ipynb").exists() and results[1].nb is not None
    # an output the client cannot write: RN170, exactly as a local run says it
    local = run_notebook(str(quick), RunOptions(), output=unwritable)
    assert results[2].output is None and local.output is None and local.status == "failed"
    def said(result: RunResult) -> list[tuple[Any, ...]]:  # the error names a random temporary file
        return [(f.code, f.message, {k: v for k, v in f.evidence.items() if k != "error"},
                 f.evidence["error"].split(":")[0]) for f in result.findings]

    assert said(results[2]) == said(local) and local.findings[0].code == "RN170"
