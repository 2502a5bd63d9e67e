"""An example third-party plugin for account-balance; see ``balance_audit.plugin``."""
