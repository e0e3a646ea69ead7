"""Never imported: tests/test_botstate.py checks that stored data naming it builds nothing."""

raise RuntimeError("stored botbuilder state made the bot import tests.botstate_canary")
