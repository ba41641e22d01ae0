"""Build declarations: the Cython hot path from ext/, protobuf and gRPC code from proto/.

Switches (environment): ``MAGNETAR_ANNOTATE=1`` writes Cython HTML annotations,
``MAGNETAR_LINETRACE=1`` compiles with line tracing for coverage,
``MAGNETAR_DEBUG_INFO=1`` keeps C debug information (for gdb or ``perf annotate``).

The compiled modules share C-level types through ``.pxd`` files kept in ``ext/`` under
the module's dotted name (``ext/engine.hotpath.native.serde.pxd``): Cython finds such a
file beside the source both as that module's own declarations and for a ``cimport``
from another module.
"""

import os
import pathlib
import re
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).parent.resolve()
PROTO_DIR = ROOT / "proto"
PROTO_OUT = ROOT / "engine" / "proto"


def generate_proto() -> None:
    """Compile proto/*.proto into engine/proto/ (messages, gRPC stubs, type stubs)."""
    protos = sorted(PROTO_DIR.glob("*.proto"))
    if not protos:
        return
    import grpc_tools  # build requirement
    from grpc_tools import protoc

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={PROTO_OUT}",
        f"--pyi_out={PROTO_OUT}",
        f"--grpc_python_out={PROTO_OUT}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + ", ".join(p.name for p in protos))
    # Generated gRPC modules import their messages as top-level modules; make them package-relative.
    # Anchored at the line start, so a file rewritten before is left as it is.
    for path in [*PROTO_OUT.glob("*_pb2_grpc.py"), *PROTO_OUT.glob("*_pb2.py")]:
        text = path.read_text()
        for proto in protos:
            mod = proto.stem + "_pb2"
            text = re.sub(rf"^import {mod} as", f"from . import {mod} as", text, flags=re.MULTILINE)
        path.write_text(text)


class BuildPy(build_py):
    def run(self) -> None:
        generate_proto()
        super().run()


class BuildExt(build_ext):
    def run(self) -> None:
        generate_proto()
        super().run()


def _drop_stale_c(pyx: pathlib.Path) -> None:
    """Delete ``pyx``'s generated C file when its own dotted-name .pxd is newer.

    Cython re-translates a module when a .pxd it cimports changes, but looks for the
    module's own .pxd only under the source's basename (``ext/serde.pxd``); without
    this, a changed ``ext/engine.hotpath.native.serde.pxd`` would rebuild dispatch.c
    against the new declarations and leave serde.c stale.
    """
    pxd = pyx.with_name(f"engine.hotpath.native.{pyx.stem}.pxd")
    c_file = pyx.with_suffix(".c")
    if pxd.exists() and c_file.exists() and c_file.stat().st_mtime < pxd.stat().st_mtime:
        c_file.unlink()


def extensions() -> list:
    from Cython.Build import cythonize

    linetrace = os.environ.get("MAGNETAR_LINETRACE") == "1"
    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if linetrace else []
    cflags = ["-O2"]
    if os.environ.get("MAGNETAR_DEBUG_INFO") != "1":
        # Python's own CFLAGS carry -g; without it the modules are a third of the size and
        # hold no C variable names (function symbols stay, so perf and py-spy still name
        # every function).
        cflags.append("-g0")
    mods = [
        Extension(
            f"engine.hotpath.native.{pyx.stem}",
            [str(pyx.relative_to(ROOT))],
            define_macros=macros,
            extra_compile_args=cflags if sys.platform != "win32" else [],
        )
        for pyx in sorted((ROOT / "ext").glob("*.pyx"))
    ]
    for pyx in (ROOT / "ext").glob("*.pyx"):
        _drop_stale_c(pyx)
    directives = {"language_level": "3", "embedsignature": True}
    if linetrace:
        directives["linetrace"] = True
    return cythonize(
        mods,
        include_path=[str(ROOT / "ext")],
        compiler_directives=directives,
        annotate=os.environ.get("MAGNETAR_ANNOTATE") == "1",
    )


setup(ext_modules=extensions(), cmdclass={"build_py": BuildPy, "build_ext": BuildExt})
