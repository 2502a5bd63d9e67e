"""The kernel's HTTP kit, for the routes a slice contributes: the request class (the mediator,
the caller, the command headers), strict JSON bodies and query integers, RFC 9457 problem
documents with their OpenAPI description, and examples in the OpenAPI document. The shell
(``api``) builds the app around them."""
