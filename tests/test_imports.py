import subprocess
import sys

FRAMEWORKS = ("jax", "torch", "autograd", "jaxlib")


def test_importing_gradxval_imports_no_framework():
    code = (
        "import sys, gradxval, gradxval.backends, gradxval.cli, gradxval.run.runner,"
        " gradxval.output;"
        "gradxval.backends.known_backends();"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
