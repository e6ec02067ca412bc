"""The HTTP surface: REST API, live WebSocket, metrics, health and the static pages (aiohttp)."""
