"""A plugin packaged as the kit asks: discovering it imports nothing but the plugin module."""
