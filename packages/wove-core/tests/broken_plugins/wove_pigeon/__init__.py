"""A plugin that gets its packaging wrong: its hook imports the backend library at discovery."""
