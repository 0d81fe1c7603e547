"""Signature recovery for Hyperliquid actions, fast enough not to be the sandbox's bottleneck.

``eth_keys``' pure-Python backend needs ~5 ms per ``ecrecover``; this module computes the EIP-712
digest of an L1 action directly (the ``Agent`` struct is fixed) and recovers the public key with
a GLV-split, windowed secp256k1 multiplication (~0.5 ms). User-signed actions (approveAgent,
usdSend, ...) are rare and use ``eth_account``'s generic typed-data encoder.
"""

from __future__ import annotations

from typing import Any

import msgpack
from Crypto.Hash import keccak as _keccak_mod
from eth_account import Account
from eth_account.messages import encode_typed_data

# secp256k1
P = 2**256 - 2**32 - 977
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8
# GLV endomorphism: lambda * (x, y) == (beta * x, y)
LAMBDA = 0x5363AD4CC05C30E0A5261C028812645A122E22EA20816678DF02967C1B23BD72
BETA = 0x7AE96A2B657C07106E64479EAC3434E99CF0497512F58995C1396C28719501EE
_A1 = 0x3086D221A7D46BCDE86C90E49284EB15
_B1 = -0xE4437ED6010E88286F547FA90ABFE4C3
_A2 = 0x114CA50F7A8E2F3F657C1108D9D44CFD8
_B2 = _A1

Jac = tuple[int, int, int]


def keccak(data: bytes) -> bytes:
    return _keccak_mod.new(digest_bits=256, data=data).digest()


def _jdouble(pt: Jac) -> Jac:
    x, y, z = pt
    if not y:
        return (0, 0, 0)
    ysq = y * y % P
    s = 4 * x * ysq % P
    m = 3 * x * x % P
    nx = (m * m - 2 * s) % P
    ny = (m * (s - nx) - 8 * ysq * ysq) % P
    nz = 2 * y * z % P
    return (nx, ny, nz)


def _jadd(p1: Jac, p2: Jac) -> Jac:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if not z1:
        return p2
    if not z2:
        return p1
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    if u1 == u2:
        if s1 != s2:
            return (0, 0, 0)
        return _jdouble(p1)
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    nx = (r * r - hhh - 2 * v) % P
    ny = (r * (v - nx) - s1 * hhh) % P
    nz = h * z1 * z2 % P
    return (nx, ny, nz)


def _jadd_affine(p1: Jac, x2: int, y2: int) -> Jac:
    """p1 (Jacobian) + (x2, y2) (affine)."""
    x1, y1, z1 = p1
    if not z1:
        return (x2, y2, 1)
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    if x1 == u2:
        if y1 != s2:
            return (0, 0, 0)
        return _jdouble(p1)
    h = (u2 - x1) % P
    r = (s2 - y1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    nx = (r * r - hhh - 2 * v) % P
    ny = (r * (v - nx) - y1 * hhh) % P
    nz = h * z1 % P
    return (nx, ny, nz)


def _to_affine(pt: Jac) -> tuple[int, int]:
    x, y, z = pt
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


def _batch_affine(points: list[Jac]) -> list[tuple[int, int]]:
    """Normalise Jacobian points with one modular inversion (Montgomery's trick)."""
    n = len(points)
    prefix = [1] * n
    acc = 1
    for i, (_x, _y, z) in enumerate(points):
        prefix[i] = acc
        acc = acc * z % P
    inv = pow(acc, -1, P)
    out: list[tuple[int, int]] = [(0, 0)] * n
    for i in range(n - 1, -1, -1):
        x, y, z = points[i]
        zi = inv * prefix[i] % P
        inv = inv * z % P
        zi2 = zi * zi % P
        out[i] = (x * zi2 % P, y * zi2 * zi % P)
    return out


Table = list[list[tuple[int, int]]]


def _fixed_table(x: int, y: int, w: int) -> Table:
    """table[i][j - 1] = j * 2^(w i) * (x, y) in affine coordinates, j in 1 .. 2^w - 1."""
    table: Table = []
    base: Jac = (x, y, 1)
    for _ in range((256 + w - 1) // w):
        row: list[Jac] = []
        acc: Jac = (0, 0, 0)
        for _j in range(1, 1 << w):
            acc = _jadd(acc, base)
            row.append(acc)
        table.append(_batch_affine(row))
        for _k in range(w):
            base = _jdouble(base)
    return table


def _mul_fixed(acc: Jac, k: int, table: Table, w: int) -> Jac:
    """acc + k * P for a point P with a precomputed fixed-base table (no doublings)."""
    i = 0
    mask = (1 << w) - 1
    while k:
        d = k & mask
        if d:
            x, y = table[i][d - 1]
            acc = _jadd_affine(acc, x, y)
        k >>= w
        i += 1
    return acc


# Fixed-base table for G: window 6 bits.
_GW = 6
_G_TABLE = _fixed_table(GX, GY, _GW)


def _mul_g(k: int) -> Jac:
    return _mul_fixed((0, 0, 0), k, _G_TABLE, _GW)


def _wnaf(k: int, w: int) -> list[int]:
    out: list[int] = []
    full = 1 << w
    half = full >> 1
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        out.append(d)
        k >>= 1
    return out


def _split(k: int) -> tuple[int, int]:
    """GLV decomposition k = k1 + k2 * lambda (mod N) with |k1|, |k2| ~ 2^128."""
    c1 = (_B2 * k + N // 2) // N
    c2 = (-_B1 * k + N // 2) // N
    k1 = k - c1 * _A1 - c2 * _A2
    k2 = -c1 * _B1 - c2 * _B2
    return k1, k2


def _mul_var(x: int, y: int, k: int) -> Jac:
    """k * (x, y) for an arbitrary affine point: GLV split, interleaved width-5 wNAF over affine
    precomputed odd multiples, with the doubling and mixed addition inlined (hot loop)."""
    k1, k2 = _split(k % N)
    raw: list[Jac] = []
    nafs: list[list[int]] = []
    for kk, px in ((k1, x), (k2, BETA * x % P)):
        py = y
        if kk < 0:
            kk = -kk
            py = P - y
        base: Jac = (px, py, 1)
        dbl = _jdouble(base)
        odd = [base]
        for _ in range(7):
            odd.append(_jadd(odd[-1], dbl))
        raw.extend(odd)
        nafs.append(_wnaf(kk, 5))
    aff = _batch_affine(raw)
    tabs = (aff[:8], aff[8:])
    length = max(len(nafs[0]), len(nafs[1]))
    for naf in nafs:
        naf.extend([0] * (length - len(naf)))
    n0, n1 = nafs
    jx = jy = jz = 0
    for i in range(length - 1, -1, -1):
        if jz:
            ysq = jy * jy % P
            s_ = 4 * jx * ysq % P
            m = 3 * jx * jx % P
            jz = 2 * jy * jz % P
            nx2 = (m * m - 2 * s_) % P
            jy = (m * (s_ - nx2) - 8 * ysq * ysq) % P
            jx = nx2
        for d, tab in ((n0[i], tabs[0]), (n1[i], tabs[1])):
            if not d:
                continue
            if d > 0:
                ax, ay = tab[d >> 1]
            else:
                ax, ay = tab[(-d) >> 1]
                ay = P - ay
            if not jz:
                jx, jy, jz = ax, ay, 1
                continue
            z1z1 = jz * jz % P
            u2 = ax * z1z1 % P
            s2 = ay * jz * z1z1 % P
            if jx == u2:
                if jy != s2:
                    jx = jy = jz = 0
                else:
                    jx, jy, jz = _jdouble((jx, jy, jz))
                continue
            h = (u2 - jx) % P
            r = (s2 - jy) % P
            hh = h * h % P
            hhh = h * hh % P
            v = jx * hh % P
            nx3 = (r * r - hhh - 2 * v) % P
            jy = (r * (v - nx3) - jy * hhh) % P
            jz = h * jz % P
            jx = nx3
    return (jx, jy, jz)


def ecrecover(digest: bytes, v: int, r: int, s: int) -> str | None:
    """Checksum address that signed ``digest``, or None for an invalid signature."""
    found = ecrecover_point(digest, v, r, s)
    return found[0] if found else None


def ecrecover_point(digest: bytes, v: int, r: int, s: int) -> tuple[str, tuple[int, int]] | None:
    """(checksum address, public key point) that signed ``digest``."""
    if v >= 27:
        v -= 27
    if v not in (0, 1) or not (0 < r < N) or not (0 < s < N):
        return None
    x = r
    alpha = (x * x * x + 7) % P
    y = pow(alpha, (P + 1) // 4, P)
    if y * y % P != alpha:
        return None
    if (y & 1) != v:
        y = P - y
    z = int.from_bytes(digest, "big")
    rinv = pow(r, -1, N)
    u1 = (-z * rinv) % N
    u2 = (s * rinv) % N
    q = _jadd(_mul_g(u1), _mul_var(x, y, u2))
    if not q[2]:
        return None
    qx, qy = _to_affine(q)
    addr = keccak(qx.to_bytes(32, "big") + qy.to_bytes(32, "big"))[12:]
    return _checksum(addr.hex()), (qx, qy)


_KW = 5  # window of the per-signer fixed-base tables


class SignerCache:
    """Fast path for repeat signers: verify a signature against the public key of the signer the
    same connection used last (two fixed-base multiplications, no square root, no doublings)
    instead of recovering it. Exactly equivalent to recovery: x(R) == r and R's y parity == v."""

    def __init__(self, max_tables: int = 64):
        self.max_tables = max_tables
        self.pubkeys: dict[str, tuple[int, int]] = {}
        self.seen: dict[str, int] = {}
        self.tables: dict[str, Table] = {}

    def learn(self, address: str, pubkey: tuple[int, int]) -> None:
        self.pubkeys[address] = pubkey
        n = self.seen.get(address, 0) + 1
        self.seen[address] = n
        if n >= 2 and address not in self.tables:  # build tables only for signers that come back
            if len(self.tables) >= self.max_tables:
                self.tables.pop(next(iter(self.tables)))
            self.tables[address] = _fixed_table(pubkey[0], pubkey[1], _KW)

    def verify(self, address: str, digest: bytes, v: int, r: int, s: int) -> bool:
        table = self.tables.get(address)
        if table is None:
            return False
        if v >= 27:
            v -= 27
        if v not in (0, 1) or not (0 < r < N) or not (0 < s < N):
            return False
        z = int.from_bytes(digest, "big")
        sinv = pow(s, -1, N)
        acc = _mul_fixed((0, 0, 0), z * sinv % N, _G_TABLE, _GW)
        acc = _mul_fixed(acc, r * sinv % N, table, _KW)
        x, y, zz = acc
        if not zz:
            return False
        z2 = zz * zz % P
        if x != r * z2 % P:
            return False
        ry = y * pow(zz * z2 % P, -1, P) % P
        return (ry & 1) == v


def _checksum(hex_addr: str) -> str:
    h = keccak(hex_addr.encode()).hex()
    return "0x" + "".join(c.upper() if int(h[i], 16) >= 8 else c for i, c in enumerate(hex_addr))


# ---- EIP-712 for L1 actions (phantom agent) ----------------------------------------------------

_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_AGENT_TYPEHASH = keccak(b"Agent(string source,bytes32 connectionId)")
_L1_DOMAIN = keccak(
    _DOMAIN_TYPEHASH + keccak(b"Exchange") + keccak(b"1") + (1337).to_bytes(32, "big") + bytes(32)
)


def l1_action_hash(action: Any, vault_address: str | None, nonce: int, expires_after: int | None) -> bytes:
    data = msgpack.packb(action)
    data += nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + bytes.fromhex(
            vault_address[2:] if vault_address.startswith("0x") else vault_address
        )
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def l1_digest(connection_id: bytes, is_mainnet: bool) -> bytes:
    source = b"a" if is_mainnet else b"b"
    struct = keccak(_AGENT_TYPEHASH + keccak(source) + connection_id)
    return keccak(b"\x19\x01" + _L1_DOMAIN + struct)


def _sig_parts(signature: dict[str, Any]) -> tuple[int, int, int]:
    r = signature["r"]
    s = signature["s"]
    v = int(signature["v"])
    r_int = int(r, 16) if isinstance(r, str) else int(r)
    s_int = int(s, 16) if isinstance(s, str) else int(s)
    return v, r_int, s_int


def recover_l1_signer(
    action: Any,
    signature: dict[str, Any],
    vault_address: str | None,
    nonce: int,
    expires_after: int | None,
    is_mainnet: bool = False,
    *,
    cache: SignerCache | None = None,
    hint: str | None = None,
) -> str | None:
    """Signer of an L1 action (checksum address). With ``cache`` and ``hint`` (the address the
    same client used last), a matching signature is verified on the fast path."""
    v, r, s = _sig_parts(signature)
    digest = l1_digest(l1_action_hash(action, vault_address, nonce, expires_after), is_mainnet)
    if cache is not None and hint is not None and cache.verify(hint, digest, v, r, s):
        return hint
    found = ecrecover_point(digest, v, r, s)
    if found is None:
        return None
    if cache is not None:
        cache.learn(found[0], found[1])
    return found[0]


# ---- user-signed actions -------------------------------------------------------------------------

_CHAIN = {"name": "hyperliquidChain", "type": "string"}
USER_SIGNED_TYPES: dict[str, tuple[str, list[dict[str, str]]]] = {
    "approveAgent": (
        "HyperliquidTransaction:ApproveAgent",
        [
            _CHAIN,
            {"name": "agentAddress", "type": "address"},
            {"name": "agentName", "type": "string"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
    "usdClassTransfer": (
        "HyperliquidTransaction:UsdClassTransfer",
        [
            _CHAIN,
            {"name": "amount", "type": "string"},
            {"name": "toPerp", "type": "bool"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
    "usdSend": (
        "HyperliquidTransaction:UsdSend",
        [
            _CHAIN,
            {"name": "destination", "type": "string"},
            {"name": "amount", "type": "string"},
            {"name": "time", "type": "uint64"},
        ],
    ),
    "withdraw3": (
        "HyperliquidTransaction:Withdraw",
        [
            _CHAIN,
            {"name": "destination", "type": "string"},
            {"name": "amount", "type": "string"},
            {"name": "time", "type": "uint64"},
        ],
    ),
    "approveBuilderFee": (
        "HyperliquidTransaction:ApproveBuilderFee",
        [
            _CHAIN,
            {"name": "maxFeeRate", "type": "string"},
            {"name": "builder", "type": "address"},
            {"name": "nonce", "type": "uint64"},
        ],
    ),
}


def recover_user_signed(action: dict[str, Any], signature: dict[str, Any]) -> str | None:
    primary, fields = USER_SIGNED_TYPES[action["type"]]
    message = {f["name"]: action.get(f["name"]) for f in fields}
    if action["type"] == "approveAgent" and message.get("agentName") is None:
        message["agentName"] = ""  # the SDK signs "" and then drops the key from the wire action
    data = {
        "domain": {
            "name": "HyperliquidSignTransaction",
            "version": "1",
            "chainId": int(str(action.get("signatureChainId", "0x66eee")), 16),
            "verifyingContract": "0x0000000000000000000000000000000000000000",
        },
        "types": {
            primary: fields,
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
        },
        "primaryType": primary,
        "message": message,
    }
    v, r, s = _sig_parts(signature)
    try:
        return str(Account.recover_message(encode_typed_data(full_message=data), vrs=(v, r, s)))
    except Exception:
        return None
