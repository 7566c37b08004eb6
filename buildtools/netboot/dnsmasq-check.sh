#!/bin/bash
# docs/netboot.md's dnsmasq and nginx configurations, booted for real: both run in a network
# namespace on a tap device, copied from the docs (only the interface and paths replaced), and a
# QEMU guest (SeaBIOS, an e1000e's iPXE ROM, TCG) PXE-boots the ISO's netboot artefacts from
# them until bee's audit summary is on its serial console. Root; dnsmasq-base, nginx, QEMU.
# Heavy (one TCG boot, about 5 minutes): run it under the build host's CPU-slot wrapper.
#   buildtools/netboot/dnsmasq-check.sh ISO [WORKDIR]   (WORKDIR default dist/dnsmasq-check)
set -u
ISO=$(realpath "$1")
cd "$(dirname "$0")/../.."
W=$(realpath -m "${2:-dist/dnsmasq-check}"); rm -rf $W; mkdir -p $W/tftp
NS=beepxe
cleanup() { kill $(cat $W/dnsmasq.pid 2>/dev/null) 2>/dev/null; kill $(cat $W/nginx.pid 2>/dev/null) 2>/dev/null; ip netns del $NS 2>/dev/null; }
trap cleanup EXIT
s=$(date +%s)
python3 -m buildtools.netboot.artefacts --iso "$ISO" --url http://10.0.0.5/bee --out $W/netboot || exit 1
python3 - "$W" <<'PY'
import re, sys
from pathlib import Path
w = Path(sys.argv[1])
doc = Path("docs/netboot.md").read_text()
blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
dns = next(b for lang, b in blocks if "bee-pxe.conf" in b)
web = next(b for lang, b in blocks if lang == "nginx")
dns = dns.replace("interface=eth1", "interface=tapbee").replace("tftp-root=/srv/tftp", f"tftp-root={w}/tftp")
web = web.replace("/srv/bee/netboot/", f"{w}/netboot/")
(w / "bee-pxe.conf").write_text(dns)
(w / "nginx.conf").write_text(f"""pid {w}/nginx.pid; error_log {w}/nginx-error.log; daemon on; user root;
events {{}}
http {{ access_log {w}/access.log; client_body_temp_path {w}; proxy_temp_path {w}; fastcgi_temp_path {w}; uwsgi_temp_path {w}; scgi_temp_path {w};
{web}
}}
""")
PY
cat $W/bee-pxe.conf
ip netns add $NS
ip netns exec $NS ip link set lo up
ip netns exec $NS ip tuntap add tapbee mode tap
ip netns exec $NS ip addr add 10.0.0.5/24 dev tapbee
ip netns exec $NS ip link set tapbee up
ip netns exec $NS nginx -c $W/nginx.conf || exit 1
ip netns exec $NS dnsmasq -C $W/bee-pxe.conf -u root --no-resolv --log-dhcp --log-facility=$W/dnsmasq.log --pid-file=$W/dnsmasq.pid --dhcp-leasefile=$W/leases || exit 1
echo "servers up after $(( $(date +%s) - s )) s"
q0=$(date +%s)
ip netns exec $NS timeout 700 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 3072 -nodefaults -display none -vga none -no-reboot \
  -serial file:$W/serial.log -monitor none \
  -netdev tap,id=n0,ifname=tapbee,script=no,downscript=no -device e1000e,netdev=n0,mac=52:54:00:be:e0:05,bootindex=0 &
qpid=$!
while kill -0 $qpid 2>/dev/null; do
  grep -q "===== bee audit (exit" $W/serial.log 2>/dev/null && break
  sleep 3
done
echo "bee audit on the serial console after $(( $(date +%s) - q0 )) s (or QEMU ended)"
ok=0; grep -q "===== bee audit (exit" $W/serial.log && grep -q '"GET /bee/filesystem.squashfs HTTP/1.1" 200' $W/access.log || ok=1
kill $qpid 2>/dev/null; wait $qpid 2>/dev/null
echo "--- nginx access log"; cat $W/access.log
echo "--- dnsmasq"; grep -E "DHCPACK|sent|tags|bootfile|TFTP|filename" $W/dnsmasq.log | head -30
echo "--- serial"; grep -a -E "===== bee audit|ACCEPT|REJECT|Command line" $W/serial.log | head
exit $ok
