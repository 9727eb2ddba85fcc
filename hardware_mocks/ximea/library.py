"""A simulated ``libm3api`` (XIMEA xiAPI) behind XIMEA's official ``xiapipy`` module.

``xiapipy.xiapi`` loads the C library with ``ctypes.CDLL('/usr/lib/libm3api.so.2')``
and calls ten C functions on it. :func:`install` interposes on that one load: it
hands ``xiapipy`` an object whose attributes are real ctypes C function pointers
(``CFUNCTYPE``) backed by this module. Every call therefore crosses the same
ctypes marshalling as with the vendor library - handles through pointers,
parameter values through ``void*`` with their size and type, the ``XI_IMG``
structure filled through a pointer - and the driver's code path is exactly the
one it runs on the rig. No C compiler is needed.

The simulated camera (an MQ022CG-CM) is in :mod:`mmmelab.hardware_mocks.ximea.camera`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from typing import Any

from mmmelab.hardware_mocks.ximea.camera import (
    T_FLOAT,
    T_INT,
    T_INT64,
    T_STRING,
    XI_INVALID_ARG,
    XI_INVALID_HANDLE,
    XI_NO_DEVICES_FOUND,
    XI_OK,
    XI_WRONG_PARAM_TYPE,
    SimulatedCamera,
)

logger = logging.getLogger(__name__)


class SimulatedM3Api:
    """The library object ``xiapipy`` receives instead of ``CDLL('libm3api.so.2')``."""

    def __init__(self) -> None:
        from xiapipy.xidefs import XI_IMG  # the official structure layout

        self._xi_img = XI_IMG
        self.cameras: list[SimulatedCamera] = []
        self._handles: dict[int, SimulatedCamera] = {}
        self._next_handle = 0x1000
        self.calls: dict[str, int] = {}
        u, vp, cp = ctypes.c_uint, ctypes.c_void_p, ctypes.c_char_p
        pu, pvp = ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_void_p)
        protos: dict[str, tuple[Any, ...]] = {
            "xiGetNumberDevices": (pu,),
            "xiOpenDevice": (u, pvp),
            "xiOpenDeviceBy": (u, cp, pvp),
            "xiCloseDevice": (vp,),
            "xiStartAcquisition": (vp,),
            "xiStopAcquisition": (vp,),
            "xiGetImage": (vp, u, vp),
            "xiGetDeviceInfoString": (u, cp, vp, u),
            "xiSetParam": (vp, cp, vp, u, u),
            "xiGetParam": (vp, cp, vp, pu, pu),
        }
        for name, args in protos.items():
            impl = getattr(self, "_" + name)
            setattr(self, name, ctypes.CFUNCTYPE(ctypes.c_int, *args)(self._guard(name, impl)))

    def _guard(self, name: str, impl: Callable[..., int]) -> Callable[..., int]:
        def call(*args: Any) -> int:
            self.calls[name] = self.calls.get(name, 0) + 1
            try:
                return impl(*args)
            except Exception:
                logger.exception("simulated %s failed", name)
                return XI_INVALID_ARG

        return call

    def _camera(self, handle: int | None) -> SimulatedCamera | None:
        return self._handles.get(handle or 0)

    def _xiGetNumberDevices(self, count: Any) -> int:
        count[0] = sum(not c.unplugged for c in self.cameras)
        return XI_OK

    def _open(self, cam: SimulatedCamera, handle_out: Any) -> int:
        if cam.unplugged:
            return XI_NO_DEVICES_FOUND
        self._next_handle += 1
        self._handles[self._next_handle] = cam
        handle_out[0] = self._next_handle
        return XI_OK

    def _xiOpenDevice(self, dev_id: int, handle_out: Any) -> int:
        if dev_id >= len(self.cameras):
            return XI_NO_DEVICES_FOUND
        return self._open(self.cameras[dev_id], handle_out)

    def _xiOpenDeviceBy(self, how: int, value: bytes, handle_out: Any) -> int:
        key = (value or b"").decode()
        for cam in self.cameras:
            if how == 1 and cam.serial == key:
                return self._open(cam, handle_out)
        return XI_NO_DEVICES_FOUND

    def _xiCloseDevice(self, handle: int) -> int:
        cam = self._handles.pop(handle or 0, None)
        if cam is None:
            return XI_INVALID_HANDLE
        if cam.acquiring:
            cam.stop()
        return XI_OK

    def _xiStartAcquisition(self, handle: int) -> int:
        cam = self._camera(handle)
        return XI_INVALID_HANDLE if cam is None else cam.start()

    def _xiStopAcquisition(self, handle: int) -> int:
        cam = self._camera(handle)
        return XI_INVALID_HANDLE if cam is None else cam.stop()

    def _xiGetImage(self, handle: int, timeout_ms: int, img_ptr: int) -> int:
        cam = self._camera(handle)
        if cam is None:
            return XI_INVALID_HANDLE
        status, item = cam.next_frame(timeout_ms / 1000.0)
        if status != XI_OK:
            return status
        img = ctypes.cast(img_ptr, ctypes.POINTER(self._xi_img)).contents
        return cam.fill_image(img, item)

    def _xiGetDeviceInfoString(self, dev_id: int, prm: bytes, out: int, size: int) -> int:
        if dev_id >= len(self.cameras):
            return XI_NO_DEVICES_FOUND
        status, value, _ = self.cameras[dev_id].get_param(prm.decode())
        if status:
            return status
        data = str(value).encode()[: max(0, size - 1)] + b"\0"
        ctypes.memmove(out, data, len(data))
        return XI_OK

    def _xiSetParam(self, handle: int, prm: bytes, val: int, size: int, kind: int) -> int:
        cam = self._camera(handle)
        if cam is None:
            return XI_INVALID_HANDLE
        if kind == T_FLOAT:
            value: Any = ctypes.cast(val, ctypes.POINTER(ctypes.c_float))[0]
        elif kind == T_STRING:
            value = ctypes.string_at(val, size).decode()
        elif kind == T_INT64:
            value = ctypes.cast(val, ctypes.POINTER(ctypes.c_ulonglong))[0]
        else:
            value = ctypes.cast(val, ctypes.POINTER(ctypes.c_int))[0]
        name = prm.decode()
        expected = cam.params.get(name.partition(":")[0])
        if (
            expected is not None
            and expected.kind != kind
            and not (expected.kind == T_FLOAT and kind == T_INT)
        ):
            return XI_WRONG_PARAM_TYPE
        if expected is not None and expected.kind == T_FLOAT:
            value = float(value)
        return cam.set_param(name, value)

    def _xiGetParam(self, handle: int, prm: bytes, val: int, size: Any, kind: Any) -> int:
        cam = self._camera(handle)
        if cam is None:
            return XI_INVALID_HANDLE
        status, value, vkind = cam.get_param(prm.decode())
        if status:
            return status
        want = kind[0]
        if want == T_STRING:
            data = str(value).encode()[: max(0, size[0] - 1)]
            ctypes.memmove(val, data + b"\0", len(data) + 1)
            size[0] = len(data)
        elif want == T_FLOAT:
            ctypes.cast(val, ctypes.POINTER(ctypes.c_float))[0] = float(value)
        elif want == T_INT64:
            ctypes.cast(val, ctypes.POINTER(ctypes.c_ulonglong))[0] = int(value)
        else:
            ctypes.cast(val, ctypes.POINTER(ctypes.c_int))[0] = int(value)
        kind[0] = vkind
        return XI_OK


_LIBRARY_NAMES = ("libm3api.so.2", "xiapi64.dll", "xiapi32.dll", "m3api")
_active: SimulatedM3Api | None = None
_install_lock = threading.Lock()


def install() -> SimulatedM3Api:
    """Make ``xiapipy`` talk to the simulated library; returns it (one per process).

    If ``xiapipy.xiapi`` is not imported yet, its ``CDLL(...)`` load of libm3api is
    interposed during the import; if it was imported (against a simulated library
    of ours), the same library object is returned. Cameras are added to
    ``library.cameras``.
    """
    global _active
    with _install_lock:
        if _active is not None:
            return _active
        import sys

        if "xiapipy.xiapi" in sys.modules:
            raise RuntimeError(
                "xiapipy.xiapi was imported against the real libm3api before "
                "the simulator was installed"
            )
        library = SimulatedM3Api()
        real_cdll = ctypes.CDLL

        class _InterposingCDLL(real_cdll):  # type: ignore[misc, valid-type]
            def __new__(cls, name: str, *args: Any, **kwargs: Any) -> Any:
                if str(name).endswith(_LIBRARY_NAMES):
                    return library
                return real_cdll(name, *args, **kwargs)

        # xiapi star-imports ctypes and xidefs; both must hand it the interposer.
        import xiapipy.xidefs as xidefs

        ctypes.CDLL = _InterposingCDLL  # type: ignore[misc, assignment]
        xidefs.CDLL = _InterposingCDLL
        try:
            import xiapipy.xiapi  # noqa: F401 - the import is the point
        finally:
            ctypes.CDLL = real_cdll  # type: ignore[misc]
            xidefs.CDLL = real_cdll
        _active = library
        return library
