"""Regenerates the committed stubs in src/freshvec/v1 from ../../proto (the public API only).

Run with the pinned generator:  pip install grpcio-tools==1.76.0 && python scripts/gen_stubs.py
`--check` regenerates into a temporary directory and exits 1 when the committed stubs differ
(the test suite runs it). The peer proto (freshvec/peer/v1) is never shipped."""
import filecmp
import os
import sys
import tempfile

from grpc_tools import protoc

GENERATOR = "1.76.0"
HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "..", "proto"))
DEST = os.path.normpath(os.path.join(HERE, "..", "src"))
FILES = ["freshvec_pb2.py", "freshvec_pb2.pyi", "freshvec_pb2_grpc.py"]


def generate(out):
    import grpc_tools

    version = getattr(grpc_tools, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("grpcio-tools")
    if version != GENERATOR:
        sys.exit(f"grpcio-tools {version} installed; the stubs are generated with {GENERATOR}")
    rc = protoc.main(["protoc", f"-I{PROTO}", f"--python_out={out}", f"--pyi_out={out}",
                      f"--grpc_python_out={out}", os.path.join(PROTO, "freshvec", "v1", "freshvec.proto")])
    if rc != 0:
        sys.exit(f"protoc failed ({rc})")


def main():
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp)
            stale = [f for f in FILES if not filecmp.cmp(os.path.join(tmp, "freshvec", "v1", f),
                                                         os.path.join(DEST, "freshvec", "v1", f), shallow=False)]
        if stale:
            sys.exit(f"stubs out of date with proto/: {stale}; run python scripts/gen_stubs.py")
        print("stubs match proto/")
    else:
        generate(DEST)
        print(f"stubs written to {os.path.join(DEST, 'freshvec', 'v1')}")


if __name__ == "__main__":
    main()
