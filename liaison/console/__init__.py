"""The office console's domain: staff sign-in to the desk console (passwords, one-time links,
sessions), the 台账 (ledger) query and its export rows, and the office's statistics figures, each
defined once here and shared by the console, the API and the exports."""
