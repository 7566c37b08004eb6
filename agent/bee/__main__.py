from bee.cli import main

raise SystemExit(main())
