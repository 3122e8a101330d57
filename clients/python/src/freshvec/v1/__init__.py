"""Generated from proto/freshvec/v1/freshvec.proto by scripts/gen_stubs.py; do not edit."""
