#!/bin/sh
# bee: sourced by bee-audit-boot and bee-sshsetup. bee_consoles prints the consoles an operator
# may be looking at: tty1 (the screen) and each serial console= of the kernel command line
# (console=ttyS0,115200: the BMC's serial-over-LAN), each once. $1: the command line's file.
bee_consoles() {
	_consoles="tty1"
	for _arg in $(cat "${1:-/proc/cmdline}" 2>/dev/null); do
		case "$_arg" in
		console=ttyS*|console=ttyAMA*|console=hvc*)
			_name=${_arg#console=}
			_name=${_name%%,*}
			case " $_consoles " in *" $_name "*) ;; *) _consoles="$_consoles $_name" ;; esac
			;;
		esac
	done
	echo "$_consoles"
}
