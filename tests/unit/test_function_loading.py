"""Loading user code: every function style, packages, and the errors users see."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from engine.function import FunctionLoadError, add_code_paths, codec_for, load_function, prepare_package
from engine.hotpath import HotPath
from tests.packaging_helpers import make_wheel, make_zip


def module(tmp_path: Path, source: str) -> str:
    name = f"m_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(source)
    add_code_paths([str(tmp_path)])
    return name


def test_pulsar_function_subclass(tmp_path: Path) -> None:
    m = module(
        tmp_path,
        "from pulsar import Function\nclass F(Function):\n"
        "    def process(self, input, context):\n        return input + '!'\n",
    )
    f = load_function(f"{m}.F")
    assert f.style == "pulsar.Function" and f.pass_context and f.call("a", None) == "a!"


def test_plain_class_with_process(tmp_path: Path) -> None:
    m = module(tmp_path, "class F:\n    def process(self, input):\n        return input * 2\n")
    f = load_function(f"{m}.F")
    assert f.style == "class" and not f.pass_context and f.call(3) == 6


def test_callable_class(tmp_path: Path) -> None:
    m = module(
        tmp_path, "class F:\n    def __call__(self, input, context):\n        return (input, context)\n"
    )
    f = load_function(f"{m}.F")
    assert f.style == "callable" and f.pass_context and f.call(1, "c") == (1, "c")


def test_module_function_and_native_module(tmp_path: Path) -> None:
    m = module(tmp_path, "def process(input):\n    return input + '?'\ndef other(x, ctx):\n    return ctx\n")
    native = load_function(m)
    assert native.style == "module" and not native.pass_context and native.call("a") == "a?"
    other = load_function(f"{m}.other")
    assert other.style == "function" and other.pass_context


@pytest.mark.parametrize(
    ("source", "suffix", "message"),
    [
        ("x = 1\n", ".Missing", "has no attribute 'Missing'"),
        ("x = 1\n", "", "module has no process(input) function"),
        ("import not_a_real_dependency_xyz\n", ".F", "a dependency is missing"),
        ("raise RuntimeError('broken at import')\n", ".F", "RuntimeError: broken at import"),
        (
            "class F:\n    def __init__(self, a): pass\n    def process(self, i): pass\n",
            ".F",
            "could not create an instance with no arguments",
        ),
        ("class F:\n    pass\n", ".F", "neither process() nor __call__()"),
        ("F = 3\n", ".F", "names a int"),
    ],
)
def test_load_errors_name_the_problem(tmp_path: Path, source: str, suffix: str, message: str) -> None:
    m = module(tmp_path, source)
    with pytest.raises(FunctionLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_function(m + suffix)


def test_unknown_module() -> None:
    with pytest.raises(FunctionLoadError, match="no module named 'nope_xyz'"):
        load_function("nope_xyz.F")


def test_missing_package_file(tmp_path: Path) -> None:
    with pytest.raises(FunctionLoadError, match="no such file"):
        prepare_package(str(tmp_path / "absent.py"), str(tmp_path / "cache"))
    bad = tmp_path / "f.tar"
    bad.write_text("x")
    with pytest.raises(FunctionLoadError, match=r"expected a \.py, \.zip or \.whl"):
        prepare_package(str(bad), str(tmp_path / "cache"))


def test_zip_with_requirements_and_local_wheels(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    dep = f"magnetar-testdep-{tag}"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    whl = make_wheel(str(wheels), dep, "1.0", {f"dep_{tag}.py": "def shout(s):\n    return s.upper()\n"})
    pkg = f"fn_{tag}"
    zpath = make_zip(
        str(tmp_path / "fn.zip"),
        {
            f"{pkg}/src/{pkg}.py": f"import dep_{tag}\ndef process(x):\n    return dep_{tag}.shout(x)\n",
            f"{pkg}/requirements.txt": f"{dep}==1.0\n",
            f"{pkg}/deps/{os.path.basename(whl)}": Path(whl).read_bytes(),
        },
    )
    paths = prepare_package(zpath, str(tmp_path / "cache"))
    add_code_paths(paths)
    assert load_function(pkg).call("hi") == "HI"
    # Cached by content: a second prepare reuses the same directory.
    assert prepare_package(zpath, str(tmp_path / "cache")) == paths


def test_wheel_package(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    whl = make_wheel(
        str(tmp_path),
        f"fnwheel-{tag}",
        "0.1",
        {f"fnwheel_{tag}/__init__.py": "def process(x):\n    return x[::-1]\n"},
    )
    add_code_paths(prepare_package(whl, str(tmp_path / "cache")))
    assert load_function(f"fnwheel_{tag}").call("abc") == "cba"


def test_zip_with_unsatisfiable_requirement(tmp_path: Path) -> None:
    zpath = make_zip(
        str(tmp_path / "bad.zip"), {"f.py": "x=1\n", "requirements.txt": "magnetar-no-such-dist-zz9==9.9\n"}
    )
    with pytest.raises(FunctionLoadError, match=r"installing requirements\.txt of .* failed"):
        prepare_package(zpath, str(tmp_path / "cache"))


def test_serde_names_map_to_builtin_codecs(hot: HotPath, tmp_path: Path) -> None:
    s = hot.serde
    cases: dict[Any, int] = {
        None: s.KIND_IDENTITY,
        "serde.IdentitySerDe": s.KIND_IDENTITY,
        "pulsar.functions.serde.PickleSerDe": s.KIND_PICKLE,
        "serde.PickleSerDe": s.KIND_PICKLE,
        "engine.function.serdes.JsonSerDe": s.KIND_JSON,
        "json": s.KIND_JSON,
        "bytes": s.KIND_BYTES,
    }
    for name, kind in cases.items():
        assert codec_for(hot, name).kind == kind, name
    assert codec_for(hot, None, "STRING").kind == s.KIND_STRING
    m = module(
        tmp_path,
        "class Rev:\n    def serialize(self, v): return v[::-1].encode()\n"
        "    def deserialize(self, b): return b.decode()[::-1]\n",
    )
    user = codec_for(hot, f"{m}.Rev")
    assert user.kind == s.KIND_USER and user.decode(b"abc") == "cba"
    with pytest.raises(FunctionLoadError, match="schemaType 'AVRO'"):
        codec_for(hot, None, "AVRO")
