#!/bin/sh
# bee smoke test: run on a booted bee image as root.
#
#     ssh root@<ip> 'sh -s' < iso/builder/smoketest.sh
#
# One line per check: PASS, FAIL or SKIP, the check's name and a reason. Exit 0 only when no
# check FAILed. POSIX sh; uses only what the image carries.
#
# For tests, these can be pointed elsewhere: BEE_SMOKE_AUDIT, BEE_SMOKE_RELEASE,
# BEE_SMOKE_NVIDIA_DIR, BEE_SMOKE_LIB_DIR, BEE_SMOKE_SYS_PCI, and BEE_SMOKE_ONLY="check_a check_b" runs only
# the named check functions (see the list at the end).

AUDIT=${BEE_SMOKE_AUDIT:-/var/log/bee-audit.json}
RELEASE=${BEE_SMOKE_RELEASE:-/etc/bee-release}
NVIDIA_DIR=${BEE_SMOKE_NVIDIA_DIR:-/usr/local/lib/nvidia}
LIB_DIR=${BEE_SMOKE_LIB_DIR:-/usr/lib}
SYS_PCI=${BEE_SMOKE_SYS_PCI:-/sys/bus/pci/devices}
MARKER=/etc/bee/password-fallback

export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}
PASSES=0
FAILS=0
SKIPS=0

pass() { PASSES=$((PASSES + 1)); echo "PASS $1: $2"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $1: $2"; }
skip() { SKIPS=$((SKIPS + 1)); echo "SKIP $1: $2"; }

# -- tools and files -----------------------------------------------------------------------

check_tools() {
	# Everything the collectors and the boot units run.
	for tool in bee python3 dmidecode lspci lsblk smartctl nvme ipmitool qrencode insmod \
		modinfo modprobe ethtool dhclient ip sshd ssh-keygen; do
		if path=$(command -v "$tool" 2>/dev/null); then
			pass "tool-$tool" "$path"
		else
			fail "tool-$tool" "not found on PATH"
		fi
	done
	if [ -s /usr/share/misc/pci.ids ]; then
		pass pci-ids "/usr/share/misc/pci.ids present"
	else
		fail pci-ids "/usr/share/misc/pci.ids missing: lspci cannot name devices"
	fi
}

check_release() {
	if [ ! -s "$RELEASE" ]; then
		fail release "$RELEASE missing or empty"
		return
	fi
	version=$(sed -n "s/^BEE_VERSION=//p" "$RELEASE" | tr -d "'")
	if [ -z "$version" ]; then
		fail release "$RELEASE has no BEE_VERSION"
		return
	fi
	pass release "$RELEASE: bee $version, kernel $(sed -n "s/^DEBIAN_KERNEL_ABI=//p" "$RELEASE" | tr -d "'")"
	if bee_reported=$(bee --version 2>&1); then
		case "$bee_reported" in
		*"$version"*) pass bee-version "$bee_reported" ;;
		*) fail bee-version "bee --version says '$bee_reported', release file says $version" ;;
		esac
	else
		fail bee-version "bee --version failed: $bee_reported"
	fi
}

# -- systemd -------------------------------------------------------------------------------

# ActiveState/SubState/Result, e.g. "active/exited/success".
unit_state() {
	printf '%s/%s/%s' "$(systemctl show -p ActiveState --value "$1" 2>/dev/null)" \
		"$(systemctl show -p SubState --value "$1" 2>/dev/null)" \
		"$(systemctl show -p Result --value "$1" 2>/dev/null)"
}

check_units() {
	for unit in ssh.service bee-sshsetup.service bee-network.service; do
		if systemctl -q is-active "$unit"; then
			pass "unit-$unit" "active"
		else
			fail "unit-$unit" "not active ($(unit_state "$unit"))"
		fi
	done
	state=$(unit_state bee-audit.service)
	case "$state" in
	active/exited/success) pass unit-bee-audit.service "finished ($state)" ;;
	*) fail unit-bee-audit.service "did not finish successfully ($state)" ;;
	esac
	running=$(systemctl is-system-running 2>/dev/null)
	case "$running" in
	running) pass system-state "running" ;;
	degraded) fail system-state "degraded: failed units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')" ;;
	*) fail system-state "systemctl is-system-running says '$running'" ;;
	esac
}

# -- the audit -----------------------------------------------------------------------------

check_audit() {
	if [ ! -s "$AUDIT" ]; then
		fail audit-file "$AUDIT missing or empty"
		return
	fi
	# The document's form, then its content: the audit on this image read the machine.
	if out=$(python3 - "$AUDIT" 2>&1 <<'PY'
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as handle:
        doc = json.load(handle)
except (OSError, ValueError) as exc:
    sys.exit(f"not valid JSON: {exc}")
if not isinstance(doc, dict):
    sys.exit("top level is not an object")
missing = [key for key in ("schema_version", "collectors", "errors") if key not in doc]
if missing:
    sys.exit("missing keys: " + ", ".join(missing))
# The sections are the collectors bee ran (its registry): each has its key, object or null.
collectors = doc["collectors"]
if not isinstance(collectors, dict) or not collectors:
    sys.exit("collectors is not a non-empty object")
missing = [key for key in collectors if key not in doc]
if missing:
    sys.exit("missing sections: " + ", ".join(missing))
errors = doc["errors"]
if not isinstance(errors, list):
    sys.exit("errors is not a list")
version = doc["schema_version"]
status = {k: v.get("status") if isinstance(v, dict) else None for k, v in collectors.items()}
problems = []
if type(version) is not int or version < 1:
    problems.append(f"schema_version {version!r} is not a version number")
unfinished = [f"{k} {v}" for k, v in status.items() if v not in ("ok", "empty")]
if unfinished:
    problems.append("collectors that did not finish: " + ", ".join(unfinished))
hollow = [k for k, v in status.items() if v == "ok" and not isinstance(doc[k], dict)]
if hollow:
    problems.append("ok but no section: " + ", ".join(hollow))
# Every machine bee boots on has CPUs, memory and a PCI bus.
unread = [k for k in ("cpu", "memory", "pcie") if status.get(k) != "ok"]
if unread:
    problems.append("not read: " + ", ".join(unread))
if errors:
    shown = "; ".join(
        f"{e.get('collector')}: {e.get('message')}" if isinstance(e, dict) else repr(e)
        for e in errors[:3]
    )
    problems.append(f"{len(errors)} collector error(s): {shown}")
if problems:
    sys.exit("; ".join(problems))
read = sum(1 for v in status.values() if v == "ok")
print(f"schema {version}, {read} of {len(status)} sections read, no collector errors")
PY
	); then
		pass audit-file "$AUDIT: $out"
	else
		fail audit-file "$AUDIT: $out"
	fi
}

# -- SSH -----------------------------------------------------------------------------------

check_ssh() {
	boot=$(awk '$1 == "btime" { print $2 }' /proc/stat)
	keys=$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)
	if [ -z "$keys" ]; then
		fail ssh-host-keys "no /etc/ssh/ssh_host_*_key"
	else
		old=""
		for key in $keys; do
			[ "$(stat -c %Y "$key")" -ge "$boot" ] || old="$old $key"
		done
		if [ -n "$old" ]; then
			fail ssh-host-keys "older than this boot:$old"
		else
			pass ssh-host-keys "$(echo "$keys" | wc -l) host key(s) generated this boot"
		fi
	fi
	effective=$(sshd -T 2>/dev/null | awk '$1 == "passwordauthentication" { print $2 }')
	if [ -e "$MARKER" ]; then
		if [ "$effective" = yes ]; then
			pass ssh-password-auth "on: the build set the password-fallback marker (no keys)"
		else
			fail ssh-password-auth "marker set but sshd -T says '$effective'"
		fi
	elif [ "$effective" = no ]; then
		pass ssh-password-auth "off (sshd -T)"
	else
		fail ssh-password-auth "sshd -T says passwordauthentication '$effective', expected no"
	fi
	if ! getent passwd user >/dev/null 2>&1; then
		pass live-user "no live 'user' account"
	elif [ "$(passwd -S user | awk '{print $2}')" = L ]; then
		pass live-user "live 'user' account is locked"
	else
		fail live-user "live 'user' account is not locked"
	fi
}

# -- network -------------------------------------------------------------------------------

check_network() {
	route=$(ip route show default 2>/dev/null | head -n 1)
	if [ -n "$route" ]; then
		pass lan "default route: $route"
		return
	fi
	lease=$(grep -l fixed-address /var/lib/dhcp/dhclient*.leases 2>/dev/null | head -n 1)
	if [ -n "$lease" ]; then
		pass lan "DHCP lease in $lease"
	else
		skip lan "no default route and no DHCP lease: this network gave none"
	fi
}

# -- NVIDIA --------------------------------------------------------------------------------

# NVIDIA display/3D controllers on the PCI bus (vendor 0x10de, class 0x03xxxx), read from
# sysfs, where lspci reads them too: the count must not depend on lspci being present.
nvidia_gpu_count() {
	count=0
	for dev in "$SYS_PCI"/*; do
		[ "$(cat "$dev/vendor" 2>/dev/null)" = 0x10de ] || continue
		case "$(cat "$dev/class" 2>/dev/null)" in 0x03*) count=$((count + 1)) ;; esac
	done
	echo "$count"
}

release_value() {
	sed -n "s/^$1=//p" "$RELEASE" 2>/dev/null | tr -d "'"
}

check_nvidia_files() {
	driver=$(release_value NVIDIA_DRIVER_VERSION)
	if [ -z "$driver" ] || [ "$driver" = none ]; then
		skip nvidia-files "this image was built without NVIDIA (--no-nvidia)"
		return
	fi
	running=$(uname -r)
	# One directory of modules per flavour shipped (NVIDIA_FLAVOUR="open proprietary").
	for flavour in $(release_value NVIDIA_FLAVOUR); do
		kos=$(ls "$NVIDIA_DIR/$flavour"/*.ko 2>/dev/null)
		if [ -z "$kos" ]; then
			fail "nvidia-modules-shipped-$flavour" "no $NVIDIA_DIR/$flavour/*.ko (release says driver $driver)"
			continue
		fi
		pass "nvidia-modules-shipped-$flavour" "$(echo "$kos" | wc -l) module(s) in $NVIDIA_DIR/$flavour"
		for ko in $kos; do
			magic=$(modinfo -F vermagic "$ko" 2>/dev/null | cut -d' ' -f1)
			if [ "$magic" = "$running" ]; then
				pass "nvidia-modinfo-$flavour-$(basename "$ko" .ko)" "vermagic $magic"
			else
				fail "nvidia-modinfo-$flavour-$(basename "$ko" .ko)" "vermagic '$magic', running $running"
			fi
		done
	done
	# The driver's own list, which bee-nvidia chooses the flavour from.
	if out=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["chips"]), "chips")' \
		"$NVIDIA_DIR/supported-gpus.json" 2>&1); then
		pass nvidia-supported-gpus "$NVIDIA_DIR/supported-gpus.json: $out"
	else
		fail nvidia-supported-gpus "$NVIDIA_DIR/supported-gpus.json: $(echo "$out" | tail -n 1)"
	fi
	# The word on stdout, the reason on stderr (their order is not fixed when both are pipes).
	why=$(mktemp)
	choice=$(bee nvidia-flavour 2>"$why")
	reason=$(tr '\n' ' ' < "$why")
	rm -f "$why"
	case "$choice" in
	open|proprietary|none) pass nvidia-flavour "$choice: $reason" ;;
	*) fail nvidia-flavour "bee nvidia-flavour: ${choice:-no answer} $reason" ;;
	esac
	for lib in libnvidia-ml.so.1 libcuda.so.1; do
		if [ -L "$LIB_DIR/$lib" ] && [ -e "$LIB_DIR/$lib" ]; then
			pass "nvidia-lib-$lib" "$LIB_DIR/$lib -> $(readlink "$LIB_DIR/$lib")"
		else
			fail "nvidia-lib-$lib" "$LIB_DIR/$lib is not a symlink to a present library"
		fi
	done
	if ! command -v nvidia-smi >/dev/null 2>&1; then
		fail nvidia-smi-runs "nvidia-smi not found"
		return
	fi
	out=$(timeout 60 nvidia-smi -L 2>&1)
	case "$out" in
	*"error while loading shared libraries"*|*"couldn't find libnvidia-ml"*|*"Failed to initialize NVML: Driver/library version mismatch"*)
		fail nvidia-smi-runs "$(echo "$out" | head -n 1)" ;;
	*) pass nvidia-smi-runs "$(echo "$out" | head -n 1)" ;;
	esac
}

check_nvidia_gpus() {
	gpus=$(nvidia_gpu_count)
	if [ "$gpus" -eq 0 ]; then
		skip nvidia-modules-loaded "no NVIDIA GPU on the PCI bus"
		skip nvidia-smi-gpus "no NVIDIA GPU on the PCI bus"
		skip nvidia-devices "no NVIDIA GPU on the PCI bus"
		skip nvidia-audit "no NVIDIA GPU on the PCI bus"
		return
	fi
	missing=""
	for module in nvidia nvidia_modeset nvidia_uvm; do
		[ -d "/sys/module/$module" ] || [ -d "/sys/module/$(echo "$module" | sed 's/^nvidia/nvidia_current/')" ] ||
			missing="$missing $module"
	done
	if [ -n "$missing" ]; then
		fail nvidia-modules-loaded "$gpus GPU(s) but not loaded:$missing (journalctl -u bee-nvidia)"
	else
		pass nvidia-modules-loaded "nvidia, nvidia_modeset, nvidia_uvm"
	fi
	seen=$(timeout 60 nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
	if [ "$seen" -eq "$gpus" ]; then
		pass nvidia-smi-gpus "nvidia-smi sees $seen of $gpus GPU(s) on the PCI bus"
	else
		fail nvidia-smi-gpus "nvidia-smi sees $seen GPU(s), the PCI bus has $gpus"
	fi
	nodes=""
	for node in /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools; do
		[ -c "$node" ] || nodes="$nodes $node"
	done
	if [ -n "$nodes" ]; then
		fail nvidia-devices "missing:$nodes"
	else
		pass nvidia-devices "/dev/nvidiactl, /dev/nvidia-uvm(-tools), $(ls /dev/nvidia[0-9]* 2>/dev/null | wc -l) GPU node(s)"
	fi
	if out=$(python3 - "$AUDIT" "$gpus" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
section = doc.get("nvidia")
if not isinstance(section, dict) or not section:
    sys.exit("the audit has no NVIDIA section")
gpus = section.get("gpus")
if isinstance(gpus, list) and len(gpus) != int(sys.argv[2]):
    sys.exit(f"the audit lists {len(gpus)} GPU(s), the PCI bus has {sys.argv[2]}")
print(f"{len(gpus) if isinstance(gpus, list) else '?'} GPU(s) in the audit's nvidia section")
PY
	); then
		pass nvidia-audit "$out"
	else
		fail nvidia-audit "$out"
	fi
}

ALL_CHECKS="check_tools check_release check_units check_audit check_ssh check_network check_nvidia_files check_nvidia_gpus"
for check in ${BEE_SMOKE_ONLY:-$ALL_CHECKS}; do
	case " $ALL_CHECKS " in
	*" $check "*) "$check" ;;
	*) fail smoke "unknown check $check" ;;
	esac
done
echo "smoke: $PASSES pass, $FAILS fail, $SKIPS skip"
[ "$FAILS" -eq 0 ]
