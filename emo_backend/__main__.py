from emo_backend.cli import main

raise SystemExit(main())
