from model_build.cli import main

raise SystemExit(main())
