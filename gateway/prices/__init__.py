"""The price table at run time: prices per endpoint, scheduled or in effect, and teams' own."""
