"""``python -m sandbox.evm``: the local EVM chains of ``make run`` — one anvil per chain id (ETH: 1,
Arbitrum: 42161) with USDT/USDC deployed, a block every ``--block-time`` seconds, state kept in
``--state-dir`` across restarts. Runs until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from sandbox.evm.node import AnvilNode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.evm")
    parser.add_argument("--state-dir", default=".xbit/evm")
    parser.add_argument("--eth-port", type=int, default=8545)
    parser.add_argument("--arbitrum-port", type=int, default=8546)
    parser.add_argument("--block-time", type=float, default=1.0)
    args = parser.parse_args(argv)
    state = Path(args.state_dir)
    nodes = [
        AnvilNode(chain_id=1, port=args.eth_port, block_time=args.block_time, state_file=state / "eth.json"),
        AnvilNode(
            chain_id=42161,
            port=args.arbitrum_port,
            block_time=args.block_time,
            state_file=state / "arbitrum.json",
        ),
    ]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for node in nodes:
            node.start()
            print(f"[evm] chain {node.chain_id} on {node.url}; USDT/USDC deployed", flush=True)
        while all(node.proc is not None and node.proc.poll() is None for node in nodes):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for node in nodes:
            node.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
