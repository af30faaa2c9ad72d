"""Offline support agents for examples/reasoning_router.yaml (deterministic, no model needed)."""


def billing(text: str) -> str:
    return ("Billing: I can see the charge. A duplicate charge is refunded within 5 business days; "
            "open Settings > Payments > Refund and pick the duplicate.")


def tech(text: str) -> str:
    return ("Tech support: update the app to the latest version, then clear its cache "
            "(Settings > Apps > Clear cache). If it still crashes, send us the error code.")


def shipping(text: str) -> str:
    return "Shipping: parcels arrive in 3-5 business days; the tracking link is in your order e-mail."


def human(text: str) -> str:
    return "This is outside what our assistants handle; a person from the support team will reply by e-mail."
