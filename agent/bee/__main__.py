# Ctrl-C while the modules load ends as quietly as Ctrl-C later (exit 130, no traceback).
try:
    from bee.cli import exit_process, main
except KeyboardInterrupt:
    raise SystemExit(130) from None

exit_process(main())
