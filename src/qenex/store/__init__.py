"""PostgreSQL storage: the embedded server, migrations, repositories and the unit of work."""
