"""The demo's site, from site.toml next to this module (devtools/site.py reads it)."""

from importlib import resources
from pathlib import Path

from devtools.site import load_site

SITE = load_site(Path(str(resources.files("devtools.demo").joinpath("site.toml"))))
SITE_TZ = SITE.timezone
DOOR, CANTEEN, SHOP, DEMO_PIN = SITE.door, SITE.canteen, SITE.shop, SITE.pin
PEOPLE = SITE.people
card_number, holder_name, seed = SITE.card_number, SITE.holder_name, SITE.seed
