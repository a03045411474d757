from gradxval.cli import main

raise SystemExit(main())
