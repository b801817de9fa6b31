#!/usr/bin/env python3
"""Writes the hand-built VRRP captures in adverts/: whole IP packets as a
raw socket or tcpdump -w would show them, laid out the way keepalived (and
RFC 9568) put them on the wire. Built here, independently of the Go codec,
so that TestCaptures checks our checksum and trailer against a second
implementation. Run from this directory: python3 mkseeds.py"""
import hashlib, hmac, ipaddress, os, struct

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xFFFF:
        s = (s >> 16) + (s & 0xFFFF)
    return ~s & 0xFFFF

def vrrp(src, dst, vrid, prio, interval_cs, addrs, version=3, typ=1, bad=False):
    src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    body = b"".join(ipaddress.ip_address(a).packed for a in addrs)
    hdr = struct.pack("!BBBBHH", version << 4 | typ, vrid, prio, len(addrs), interval_cs, 0)
    msg = hdr + body
    if src.version == 4:   # RFC 768 pseudo-header, as keepalived computes it
        ph = src.packed + dst.packed + struct.pack("!BBH", 0, 112, len(msg))
    else:                  # RFC 8200 section 8.1
        ph = src.packed + dst.packed + struct.pack("!IxxxB", len(msg), 112)
    c = csum(ph + msg) ^ (1 if bad else 0)
    return msg[:6] + struct.pack("!H", c) + msg[8:]

def ipv4(src, dst, payload, ttl=255, options=b""):
    ihl = (20 + len(options)) // 4
    h = struct.pack("!BBHHHBBH4s4s", 4 << 4 | ihl, 0xC0, ihl * 4 + len(payload), 0x1234, 0,
                    ttl, 112, 0, ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload

def ipv6(src, dst, payload, hops=255):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), 112, hops,
                       ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed) + payload

def seal(src, dst, msg, key, seq, confighash=None):
    if confighash is None:
        t = bytes([0xF1]) + struct.pack("!Q", seq)
    else:  # version 0xF2 carries 8 bytes of the sender's config hash
        t = bytes([0xF2]) + struct.pack("!Q", seq) + confighash[:8]
    mac = hmac.new(key, ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed + msg + t,
                   hashlib.sha256).digest()[:16]
    return msg + t + mac

KEY = b"fulcrum-test-key-0123456789abcdef"
L1, L2, G4 = "192.168.0.101", "192.168.0.102", "224.0.0.18"
V1, V2, G6 = "fe80::1", "fe80::2", "ff02::12"
seeds = {
    # keepalived defaults: advert_int 1 (100cs), one VIP, priority 150.
    "v4_keepalived.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 150, 100, ["192.168.0.105"])),
    "v4_fast_two_vips.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 100, 10, ["192.168.0.105", "192.168.0.106"])),
    "v4_priority0.pkt": ipv4(L2, G4, vrrp(L2, G4, 51, 0, 10, ["192.168.0.105"])),
    "v4_owner_router_alert.pkt": ipv4(L1, G4, vrrp(L1, G4, 7, 255, 4095, ["10.1.1.1", "10.1.1.2", "10.1.1.3"]),
                                      options=bytes([0x94, 4, 0, 0])),
    "v4_unicast.pkt": ipv4(L1, L2, vrrp(L1, L2, 51, 150, 10, ["192.168.0.105"])),
    "v6_multicast.pkt": ipv6(V1, G6, vrrp(V1, G6, 51, 150, 10, ["fe80::100", "2001:db8::100"])),
    "v6_unicast.pkt": ipv6(V1, V2, vrrp(V1, V2, 9, 200, 100, ["2001:db8::100"])),
    "v4_bad_checksum.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 150, 100, ["192.168.0.105"], bad=True)),
    "v4_ttl64.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 150, 100, ["192.168.0.105"]), ttl=64),
    # A VRRPv2 advert (auth type 0, 1s): a v2 keepalived on the same link.
    "v4_version2.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 150, 0x0001, ["192.168.0.105"], version=2) + bytes(8)),
    "v4_zero_interval.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 150, 0, ["192.168.0.105"])),
    "v4_count_mismatch.pkt": ipv4(L1, G4, vrrp(L1, G4, 51, 150, 10, ["192.168.0.105"])[:8] + bytes(8)),
    "v4_auth.pkt": ipv4(L1, G4, seal(L1, G4, vrrp(L1, G4, 51, 150, 10, ["192.168.0.105"]), KEY, 1700000000000000001)),
    "v6_auth.pkt": ipv6(V1, G6, seal(V1, G6, vrrp(V1, G6, 51, 150, 10, ["2001:db8::100"]), KEY, 1700000000000000002)),
    "v4_auth_hash.pkt": ipv4(L1, G4, seal(L1, G4, vrrp(L1, G4, 51, 150, 10, ["192.168.0.105"]), KEY, 1700000000000000003,
                                          bytes.fromhex("3f2a9c1e77b0d1c2"))),
}
os.makedirs("adverts", exist_ok=True)
for name, b in seeds.items():
    with open(os.path.join("adverts", name), "wb") as f:
        f.write(b)
