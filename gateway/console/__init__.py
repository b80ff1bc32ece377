"""The web pages the gateway serves itself: the operator's console (``/console``) and the
customers' portal (``/portal``). Sessions live in sealed cookies (``sessions``); pages are
rendered on the server from templates (``pages``); nothing is loaded from elsewhere."""
