"""The generator's household catalog: rooms, receptacle types, object types and where they go.

Hand-written for trajgym (not taken from ALFRED): which receptacles each room has, which
receptacles open, what each object can be (clean/heat/cool/slice/toggle) and where it fits.
"""

from __future__ import annotations

OPENABLE = frozenset({"Cabinet", "Drawer", "Fridge", "Microwave", "Safe"})
BASINS = frozenset({"SinkBasin", "BathtubBasin"})

# room -> receptacle type -> (min, max) count
ROOMS: dict[str, dict[str, tuple[int, int]]] = {
    "kitchen": {"Cabinet": (3, 9), "CounterTop": (1, 2), "Drawer": (1, 5), "Fridge": (1, 1), "Microwave": (1, 1),
                "SinkBasin": (1, 1), "StoveBurner": (2, 4), "Shelf": (0, 3), "DiningTable": (0, 1),
                "CoffeeMachine": (1, 1), "GarbageCan": (1, 1), "Toaster": (1, 1)},
    "livingroom": {"Sofa": (1, 1), "ArmChair": (0, 2), "CoffeeTable": (1, 1), "SideTable": (1, 2), "Drawer": (1, 4),
                   "Cabinet": (0, 3), "TVStand": (0, 1), "Dresser": (0, 1), "GarbageCan": (1, 1), "Shelf": (0, 3),
                   "DiningTable": (0, 1)},
    "bedroom": {"Bed": (1, 1), "Desk": (1, 2), "Drawer": (2, 6), "Shelf": (0, 4), "SideTable": (1, 2),
                "Dresser": (0, 1), "GarbageCan": (1, 1), "LaundryHamper": (0, 1), "Safe": (0, 1), "ArmChair": (0, 1)},
    "bathroom": {"Toilet": (1, 1), "BathtubBasin": (0, 1), "SinkBasin": (1, 2), "CounterTop": (1, 1), "Cabinet": (1, 4),
                 "Drawer": (0, 4), "TowelHolder": (0, 1), "HandTowelHolder": (0, 1), "ToiletPaperHanger": (1, 1),
                 "GarbageCan": (1, 1)},
}

_FOOD = ("CounterTop", "DiningTable", "Fridge", "Microwave", "GarbageCan")
_DISH = ("CounterTop", "DiningTable", "Cabinet", "Shelf", "Fridge", "Microwave", "SinkBasin")
_COOKWARE = ("CounterTop", "DiningTable", "Cabinet", "StoveBurner", "Fridge", "SinkBasin", "Shelf")
_UTENSIL = ("CounterTop", "DiningTable", "Drawer", "SinkBasin", "Cabinet")
_SMALL_LIVING = ("Sofa", "ArmChair", "CoffeeTable", "SideTable", "Drawer", "TVStand", "Dresser", "DiningTable",
                 "Shelf", "Cabinet")
_SMALL_BED = ("Bed", "Desk", "Shelf", "SideTable", "Dresser", "Drawer", "ArmChair", "Safe")
_DESKTOP = ("Desk", "Shelf", "SideTable", "Dresser", "Drawer", "GarbageCan", "CoffeeTable")
_BATH = ("CounterTop", "Toilet", "Cabinet", "Drawer", "GarbageCan", "SinkBasin", "BathtubBasin")

# object type -> (properties: c=clean, h=heat, k=cool, s=slice, t=toggle, p=pickupable), receptacles, rooms
OBJECTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "Apple": ("chksp", _FOOD + ("SinkBasin",), ("kitchen",)),
    "Bread": ("hksp", _FOOD, ("kitchen",)),
    "Potato": ("chksp", _FOOD + ("SinkBasin",), ("kitchen",)),
    "Tomato": ("chksp", _FOOD + ("SinkBasin",), ("kitchen",)),
    "Lettuce": ("cksp", ("CounterTop", "DiningTable", "Fridge", "SinkBasin", "GarbageCan"), ("kitchen",)),
    "Egg": ("chkp", _FOOD + ("SinkBasin",), ("kitchen",)),
    "Mug": ("chkp", _DISH + ("CoffeeMachine", "Desk", "SideTable"), ("kitchen", "bedroom")),
    "Cup": ("chkp", _DISH, ("kitchen",)),
    "Bowl": ("ckp", _DISH + ("Desk", "SideTable", "CoffeeTable"), ("kitchen", "bedroom", "livingroom")),
    "Plate": ("chkp", _DISH + ("CoffeeTable",), ("kitchen", "livingroom")),
    "Pan": ("ckp", _COOKWARE, ("kitchen",)),
    "Pot": ("ckp", _COOKWARE, ("kitchen",)),
    "Kettle": ("cp", ("CounterTop", "DiningTable", "Cabinet", "StoveBurner", "Shelf", "SinkBasin"), ("kitchen",)),
    "Knife": ("cp", _UTENSIL, ("kitchen",)),
    "ButterKnife": ("cp", _UTENSIL, ("kitchen",)),
    "Fork": ("cp", _UTENSIL, ("kitchen",)),
    "Spoon": ("cp", _UTENSIL, ("kitchen",)),
    "Spatula": ("cp", _UTENSIL, ("kitchen",)),
    "Ladle": ("cp", _UTENSIL, ("kitchen",)),
    "DishSponge": ("cp", _UTENSIL + ("Shelf",) + _BATH, ("kitchen", "bathroom")),
    "SaltShaker": ("p", ("CounterTop", "DiningTable", "Cabinet", "Drawer", "Shelf"), ("kitchen",)),
    "PepperShaker": ("p", ("CounterTop", "DiningTable", "Cabinet", "Drawer", "Shelf"), ("kitchen",)),
    "WineBottle": ("kp", ("CounterTop", "DiningTable", "Cabinet", "Fridge", "Shelf", "GarbageCan"), ("kitchen",)),
    "SoapBottle": ("p", ("CounterTop", "Cabinet", "Shelf", "GarbageCan", "Toilet", "Drawer"), ("kitchen", "bathroom")),
    "RemoteControl": ("p", _SMALL_LIVING, ("livingroom",)),
    "KeyChain": ("p", _SMALL_LIVING + _SMALL_BED, ("livingroom", "bedroom")),
    "CreditCard": ("p", _SMALL_LIVING + _SMALL_BED, ("livingroom", "bedroom")),
    "Newspaper": ("p", _SMALL_LIVING + ("GarbageCan",), ("livingroom",)),
    "Pillow": ("p", ("Sofa", "ArmChair", "Bed"), ("livingroom", "bedroom")),
    "Box": ("p", ("Sofa", "ArmChair", "CoffeeTable", "SideTable", "DiningTable", "Dresser", "TVStand", "Shelf"),
            ("livingroom",)),
    "Statue": ("p", ("CoffeeTable", "SideTable", "Shelf", "Dresser", "DiningTable", "TVStand"), ("livingroom",)),
    "Vase": ("p", ("CoffeeTable", "SideTable", "Shelf", "Dresser", "DiningTable", "Cabinet"), ("livingroom",)),
    "Laptop": ("p", ("Sofa", "ArmChair", "CoffeeTable", "Bed", "Desk", "Dresser", "DiningTable"),
               ("livingroom", "bedroom")),
    "Watch": ("p", ("CoffeeTable", "SideTable", "Drawer", "Dresser", "Shelf", "Cabinet", "Desk"),
              ("livingroom", "bedroom")),
    "Book": ("p", _SMALL_BED + ("CoffeeTable",), ("bedroom", "livingroom")),
    "CellPhone": ("p", _SMALL_BED, ("bedroom",)),
    "AlarmClock": ("p", ("Desk", "Shelf", "SideTable", "Dresser"), ("bedroom",)),
    "CD": ("p", _DESKTOP + ("Safe",), ("bedroom",)),
    "Pen": ("p", _DESKTOP, ("bedroom", "livingroom")),
    "Pencil": ("p", _DESKTOP, ("bedroom",)),
    "SoapBar": ("cp", _BATH, ("bathroom",)),
    "Cloth": ("cp", _BATH, ("bathroom",)),
    "SprayBottle": ("p", ("CounterTop", "Toilet", "Cabinet", "GarbageCan", "Drawer"), ("bathroom",)),
    "ToiletPaper": ("p", ("CounterTop", "Toilet", "Cabinet", "ToiletPaperHanger", "Drawer", "GarbageCan"),
                    ("bathroom",)),
    "Candle": ("p", ("CounterTop", "Toilet", "Cabinet", "Drawer"), ("bathroom",)),
    "HandTowel": ("cp", ("HandTowelHolder", "CounterTop"), ("bathroom",)),
    "Towel": ("p", ("TowelHolder", "CounterTop"), ("bathroom",)),
    "DeskLamp": ("t", ("Desk", "SideTable", "Dresser"), ("bedroom", "livingroom")),
}

# ALFWorld-style task phrasings ({obj}, {recep}, {toggle} are lower-cased type names).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "pick_and_place_simple": ("put a {obj} in {recep}.", "put some {obj} on {recep}."),
    "look_at_obj_in_light": ("look at {obj} under the {toggle}.", "examine the {obj} with the {toggle}."),
    "pick_clean_then_place_in_recep": ("put a clean {obj} in {recep}.", "clean some {obj} and put it in {recep}."),
    "pick_heat_then_place_in_recep": ("put a hot {obj} in {recep}.", "heat some {obj} and put it in {recep}."),
    "pick_cool_then_place_in_recep": ("put a cool {obj} in {recep}.", "cool some {obj} and put it in {recep}."),
    "pick_two_obj_and_place": ("put two {obj} in {recep}.", "find two {obj} and put them in {recep}."),
}
