from nbmedic.cli import main

raise SystemExit(main())
