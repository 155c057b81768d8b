"""Photos and voice sent in the chat, kept beyond WeChat's 3-day media expiry (issue 15)."""
