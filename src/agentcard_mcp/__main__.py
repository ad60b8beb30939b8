from agentcard_mcp.cli import main

raise SystemExit(main())
