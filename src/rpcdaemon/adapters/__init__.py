"""IO edges: the only modules that import kombu, openstacksdk, tooz."""
