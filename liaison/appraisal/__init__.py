"""Quarterly 述职 测评: each deputy reports to their constituents every quarter and is rated; under 90 %
opens a 整改 item with a deadline and a second 测评 after it."""
