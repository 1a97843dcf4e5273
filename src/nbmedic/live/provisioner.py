"""``nbmedic-provisioner``: jupyter_client's LocalProvisioner, plus the live monitoring of ``nbmedic monitor``.

Registered in the ``jupyter_client.kernel_provisioners`` entry-point group; a kernelspec opts in with
``metadata.kernel_provisioner = {"provisioner_name": "nbmedic-provisioner", "config": {...}}`` (the
config keys are the traits below).  Start-up, interrupts, restarts and shutdown are LocalProvisioner's
own; this class only adds, around them:

* ``pre_launch``: the kernel folder, faulthandler and the in-kernel agent on the command line of an
  IPython kernel, the environment contract (``live/paths.py``);
* ``launch_kernel``: ``session.json`` and the sampler with its memory guard;
* ``poll`` (the restarter's liveness check), the sampler thread and ``kill``/``terminate`` of a kernel
  already dead: the incident, before jupyter_client forgets the exit code (jupyter_client#957);
* ``shutdown_requested``/``kill``/``terminate`` of a live kernel, and any signal sent while the manager
  is shutting down (it interrupts the kernel first): an exit that was asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Bool, Float, Integer

from nbmedic.live.guard import GuardConfig
from nbmedic.live.session import Supervision, resolve_notebook

__all__ = ["NbmedicProvisioner"]


class NbmedicProvisioner(LocalProvisioner):
    """LocalProvisioner that records why its kernel died and guards its memory."""

    memory_limit = Integer(None, allow_none=True, config=True,
                           help="bytes; the guard uses the smaller of this and the kernel's cgroup limit")
    guard = Bool(True, config=True, help="interrupt near the limit, kill just before it")
    interrupt_at = Float(0.90, config=True, help="share of the limit at which the running cell is interrupted")
    kill_at = Float(0.97, config=True, help="share of the limit at which the kernel is killed")

    _supervision: Supervision | None = None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        kwargs = await super().pre_launch(**kwargs)
        env: dict[str, str] = dict(kwargs.get("env") or os.environ)
        cwd = kwargs.get("cwd")
        spec = self.kernel_spec
        sup = Supervision(
            str(self.kernel_id or "unknown"), supervisor="provisioner",
            kernelspec=getattr(self.parent, "kernel_name", None) or None,
            language=str(getattr(spec, "language", "") or ""),
            notebook=resolve_notebook(env.get("JPY_SESSION_NAME"), str(cwd) if cwd else None),
            cwd=str(cwd) if cwd else None,
            guard=GuardConfig(self.memory_limit, self.guard, self.interrupt_at, self.kill_at),
            log=self.log.warning)
        cmd, extra_env = sup.prepare(list(kwargs["cmd"]))
        env.update(extra_env)
        kwargs["cmd"], kwargs["env"] = cmd, env
        self._supervision = sup
        return kwargs

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        info = await super().launch_kernel(cmd, **kwargs)
        sup, process = self._supervision, self.process
        if sup is not None and process is not None:
            sup.attach(process.pid, self.pgid, poll=process.poll, interrupt=self._interrupter())
        return info

    def _interrupter(self) -> Any:
        """How the guard interrupts the running cell: the kernelspec's interrupt mode, as jupyter_client does."""
        pgid, process = self.pgid, self.process
        mode = str(getattr(self.kernel_spec, "interrupt_mode", "signal") or "signal")
        if mode == "message":
            km, loop = self.parent, asyncio.get_running_loop()
            interrupt = getattr(km, "_async_interrupt_kernel", None)
            if interrupt is None:
                return None

            def by_message() -> None:
                asyncio.run_coroutine_threadsafe(interrupt(), loop)

            return by_message

        def by_signal() -> None:
            with contextlib.suppress(OSError):
                if pgid is not None:
                    os.killpg(pgid, signal.SIGINT)
                elif process is not None:
                    process.send_signal(signal.SIGINT)

        return by_signal

    async def poll(self) -> int | None:
        ret: int | None = await super().poll()
        if ret is not None and self.process is not None and self._supervision is not None:
            self._supervision.died(ret)
        return ret

    def _expect(self) -> None:
        if self._supervision is not None:
            self._supervision.expect_exit()

    async def send_signal(self, signum: int) -> None:
        sup = self._supervision
        if sup is not None:
            if getattr(self.parent, "shutting_down", False):
                sup.expect_exit()  # jupyter_client interrupts a kernel before shutting it down
            else:
                sup.client_signal(signum)
        await super().send_signal(signum)

    async def shutdown_requested(self, restart: bool = False) -> None:
        self._expect()
        await super().shutdown_requested(restart=restart)

    async def kill(self, restart: bool = False) -> None:
        self._expect()
        await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        self._expect()
        await super().terminate(restart=restart)

    async def cleanup(self, restart: bool = False) -> None:
        sup = self._supervision
        if sup is not None:
            sup.close(final=not restart)
        await super().cleanup(restart=restart)
