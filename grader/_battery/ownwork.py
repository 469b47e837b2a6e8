"""Noticing torch's own binary cross-entropy kernels, on any thread of the process.

A student writes ``binary_cross_entropy`` and ``binary_cross_entropy_with_logits``
themselves; calling torch's instead (``F.binary_cross_entropy``, ``nn.BCELoss``,
``torch.binary_cross_entropy_with_logits``, ``torch._C._nn...``,
``torch.ops.aten...``) is not their own work. A ``TorchDispatchMode`` sees only the
thread it was entered on, so a call made from a ``threading.Thread`` or a thread pool
escapes it. This module hooks the kernels themselves instead.

:func:`install` registers, once per process, a kernel of its own for every ATen
operator whose name contains ``binary_cross_entropy`` (:data:`OPS`), at each backend
this build of torch has kernels for (``CPU`` always; ``CUDA`` and ``MPS`` where they
are built), with ``torch.library.Library("aten", "IMPL")``. Before registering, it
fetches the kernel the dispatcher would have run for that operator and backend
(``torch.library.get_kernel``); the new kernel notes the call and then runs that very
kernel on the same arguments. So results, gradients and errors are the ones torch
computes without the hook, bit for bit and message for message, and autograd is
untouched, since the hooks sit below it. ``binary_cross_entropy_with_logits``, which
has no backend kernels of its own (it is ``CompositeExplicitAutograd``), gets a
backend hook all the same, which runs its composite kernel.

A :class:`Watch` lists the hooked kernels that ran in the process while it was open,
on whatever thread: the forward, and the backward when autograd reaches
``binary_cross_entropy_backward``. A kernel that runs another one is listed with it:
``binary_cross_entropy_with_logits.out`` runs ``binary_cross_entropy_with_logits``.
Other operators are not touched, so code that runs no BCE kernel pays nothing; a BCE
kernel pays a few microseconds (about 2.5 on a CPU).

What it sees: every call of these operators that reaches a CPU, CUDA or MPS kernel
through the dispatcher, from Python or C++, on any thread (autograd's own threads
included), after :func:`install`.

In autograding this is not what decides: the judge reads the student's source, outside the
notebook's process (:mod:`grader.instructor.scan.reach`), and what the hooks report there
can only count against the notebook. They decide a student's own ``grader.check``.

What it cannot see, and why it is only best effort:

* code in the same process can undo it: register its own kernels over these, call a
  kernel it fetched before :func:`install`, or change this module's counters. The
  static scan of the student's source, elsewhere in the grader, covers such code;
* BCE computed from other operators is not torch's BCE kernel and is not reported: a
  student's own formula (``torch.log``, ``clamp``, ``logsigmoid``...), which is
  allowed, but also torch's Python decompositions (``torch._decomp``) and whatever
  ``torch.compile`` turns the operator into;
* backends other than CPU, CUDA and MPS, and tensors that never reach a backend
  kernel (meta and fake tensors);
* anything, on a torch older than 2.9: calling the kernel a hook replaces needs
  ``torch.library.get_kernel``, added in 2.9. There :func:`install` does nothing and
  :func:`installed` stays ``False``.

An error raised by torch's kernel passes through the hook unchanged, but its
traceback has one more frame, in this file (hidden by IPython, which honours
``__tracebackhide__``).
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Callable

import torch

#: The backends whose kernels can be hooked, where this build of torch has them.
_BACKENDS = ("CPU", "CUDA", "MPS")


def _bce_ops() -> tuple[str, ...]:
    # A CompositeImplicitAutograd operator (none in torch 2.13) is left alone: a
    # backend kernel for it would take autograd's formula away, and it runs the
    # operators it decomposes into, which are hooked where they compute BCE.
    return tuple(sorted(
        name for name in torch._C._dispatch_get_all_op_names()
        if name.startswith("aten::") and "binary_cross_entropy" in name
        and not torch._C._dispatch_has_kernel_for_dispatch_key(name, "CompositeImplicitAutograd")))


#: The operators hooked, as the dispatcher names them (``"aten::binary_cross_entropy"``,
#: ``"aten::binary_cross_entropy.out"``...): every ATen operator of this torch whose name
#: contains ``binary_cross_entropy``. :attr:`Watch.calls` lists these names.
OPS: tuple[str, ...] = _bce_ops()

# The calls noted since the last time no watch was open; _log[0] is the call number
# _base of the process. Kernels note calls only while a watch is open, so the log is
# emptied whenever the last watch closes.
_lock = threading.Lock()
_log: list[str] = []
_base = 0
_open = 0

_install_lock = threading.Lock()
_library: torch.library.Library | None = None


def _reset_locks_in_child() -> None:
    # A fork taken while another thread held a lock would leave the child's copy
    # held for good (the grader's warm engine forks).
    global _lock, _install_lock
    _lock = threading.Lock()
    _install_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


def _hook(name: str, original: Any) -> Callable[..., Any]:
    call = original.call_boxed

    def kernel(keyset: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # noqa: F841 (read by IPython and pytest)
        if _open:
            with _lock:
                _log.append(name)
        return call(keyset, *args, **kwargs)

    kernel.__name__ = kernel.__qualname__ = "grader_ownwork_" + name.replace("::", "_").replace(".", "_")
    return kernel


def _backends() -> list[str]:
    # A backend is built when some BCE operator has a kernel of its own for it (the
    # composite with_logits has a computed kernel for every backend, built or not).
    return [key for key in _BACKENDS
            if any(torch._C._dispatch_has_kernel_for_dispatch_key(op, key) for op in OPS)]


def install() -> None:
    """Hook torch's BCE kernels (:data:`OPS`) for the rest of the process.

    Idempotent and thread-safe: the first call registers the hooks, later calls
    return at once. The dispatcher's warning about overriding a kernel is silenced.
    If a registration fails, those already made are undone and the error is raised.
    Does nothing on a torch without ``torch.library.get_kernel`` (before 2.9).
    """
    global _library
    if _library is not None or not hasattr(torch.library, "get_kernel"):
        return
    with _install_lock:
        if _library is not None:
            return
        library = torch.library.Library("aten", "IMPL")
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"(?s).*Overriding a previously registered kernel")
                for key in _backends():
                    for op in OPS:
                        if not torch._C._dispatch_has_computed_kernel_for_dispatch_key(op, key):
                            continue
                        original = torch.library.get_kernel(op, key)
                        library.impl(op.split("::", 1)[1], _hook(op, original), key, with_keyset=True)
        except BaseException:
            library._destroy()
            raise
        _library = library


def installed() -> bool:
    """Whether :func:`install` has hooked the kernels in this process."""
    return _library is not None


class Watch:
    """Lists torch's BCE kernels that run in the process while it is open.

    ``with Watch() as watch: ...``, then ``watch.calls``: the names (from :data:`OPS`)
    of the hooked kernels that ran between entering and leaving, on any thread, in
    the order they ran. Entering installs the hooks. Watches may be nested or open
    at the same time on several threads; each sees the calls made while it was
    open. Read while the watch is open, ``calls`` holds the calls so far. A call
    that was already running when the watch opened may be listed or not.
    """

    def __init__(self) -> None:
        self._start: int | None = None
        self._calls: list[str] | None = None

    def __enter__(self) -> Watch:
        global _open
        install()
        with _lock:
            _open += 1
            self._start = _base + len(_log)
            self._calls = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _open, _base
        with _lock:
            self._calls = _log[self._start - _base:]
            _open -= 1
            if not _open:
                _base += len(_log)
                _log.clear()

    @property
    def calls(self) -> list[str]:
        """The hooked kernels that ran while the watch was open (a new list)."""
        if self._calls is not None:
            return list(self._calls)
        if self._start is None:
            return []
        with _lock:
            return _log[self._start - _base:]
