"""The built-in task set: two small generated databases with questions and data changes.

Everything is generated from fixed seeds with `random.Random`, so every machine
builds byte-identical databases and the same tasks (stable ids). `company` has
departments, employees, projects and assignments; `shop` has customers, products,
orders and order items (a few hundred rows each). Each task template is
instantiated with several parameters; a question is kept only if its gold query
returns rows, a data change only if its gold statement changes the database.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

FIRST = ["Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam", "Maya",
         "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Xena", "Yusuf", "Zoe"]
LAST = ["Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen", "Kim",
        "Lopez", "Moller", "Novak", "Okafor", "Patel", "Rossi", "Sato", "Tanaka", "Usman", "Varga", "Weber"]
CITIES = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima", "Oslo", "Austin"]
COUNTRIES = {"Berlin": "Germany", "Lisbon": "Portugal", "Osaka": "Japan", "Toronto": "Canada",
             "Nairobi": "Kenya", "Lima": "Peru", "Oslo": "Norway", "Austin": "USA"}
DEPTS = ["Engineering", "Sales", "Marketing", "Finance", "Support", "Research", "Legal", "Operations"]
TITLES = ["Engineer", "Analyst", "Manager", "Specialist", "Associate", "Director"]
PROJECT_WORDS = ["Apollo", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Indigo", "Juniper"]
CATEGORIES = ["Books", "Garden", "Kitchen", "Toys", "Sports", "Music"]
PRODUCT_WORDS = {
    "Books": ["Atlas", "Novel", "Cookbook", "Diary", "Comic", "Guide", "Poems", "Almanac", "Manual", "Biography"],
    "Garden": ["Rake", "Hose", "Shovel", "Planter", "Seeds", "Gloves", "Pruner", "Sprinkler", "Trowel", "Lantern"],
    "Kitchen": ["Kettle", "Pan", "Whisk", "Grater", "Teapot", "Blender", "Ladle", "Skillet", "Mixer", "Toaster"],
    "Toys": ["Robot", "Puzzle", "Kite", "Yo-yo", "Blocks", "Doll", "Train", "Marbles", "Drone", "Top"],
    "Sports": ["Ball", "Racket", "Helmet", "Skates", "Rope", "Mat", "Bottle", "Bag", "Net", "Bat"],
    "Music": ["Guitar", "Drum", "Flute", "Harmonica", "Ukulele", "Metronome", "Tambourine", "Piano", "Violin", "Cello"],
}
ADJECTIVES = ["Classic", "Deluxe", "Compact", "Bright"]


@dataclass(frozen=True)
class BuiltinTask:
    """One generated task: `gold` is a query (kind "query") or statements (kind "mutation")."""

    task_id: str
    db: str
    kind: str
    question: str
    gold: str
    split: str


def _split(i: int) -> str:
    return "test" if i % 5 == 0 else "dev" if i % 5 == 1 else "train"


def _names(rng: random.Random, n: int) -> list[str]:
    pairs = [f"{first} {last}" for first in FIRST for last in LAST]
    return rng.sample(pairs, n)


def build_company() -> sqlite3.Connection:
    rng = random.Random(20240501)
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE departments (dept_id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, budget INTEGER);
        CREATE TABLE employees (emp_id INTEGER PRIMARY KEY, name TEXT NOT NULL, dept_id INTEGER REFERENCES departments(dept_id),
                                title TEXT, salary INTEGER, hire_year INTEGER, manager_id INTEGER REFERENCES employees(emp_id));
        CREATE TABLE projects (project_id INTEGER PRIMARY KEY, name TEXT NOT NULL, dept_id INTEGER REFERENCES departments(dept_id),
                               budget INTEGER, start_year INTEGER, status TEXT);
        CREATE TABLE assignments (emp_id INTEGER REFERENCES employees(emp_id), project_id INTEGER REFERENCES projects(project_id),
                                  hours INTEGER, PRIMARY KEY (emp_id, project_id));
    """)
    for i, name in enumerate(DEPTS, 1):
        conn.execute("INSERT INTO departments VALUES (?, ?, ?, ?)", (i, name, CITIES[(i * 3) % len(CITIES)], rng.randrange(200, 2000) * 1000))
    heads: dict[int, int] = {}
    for emp_id, name in enumerate(_names(rng, 200), 1):
        dept = rng.randint(1, len(DEPTS))
        title = "Director" if dept not in heads else rng.choice(TITLES[:-1])
        manager = heads.get(dept)
        heads.setdefault(dept, emp_id)
        salary = rng.randrange(38, 160) * 1000 + (40_000 if title == "Director" else 0)
        conn.execute("INSERT INTO employees VALUES (?, ?, ?, ?, ?, ?, ?)", (emp_id, name, dept, title, salary, rng.randint(2008, 2024), manager))
    projects = [f"{w} {s}" for w in PROJECT_WORDS for s in ("I", "II", "III", "IV")]
    for pid, name in enumerate(projects, 1):
        conn.execute("INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?)", (pid, name, rng.randint(1, len(DEPTS)), rng.randrange(20, 900) * 1000,
                                                                         rng.randint(2015, 2024), rng.choice(["active", "active", "completed", "paused"])))
    pairs = rng.sample([(e, p) for e in range(1, 201) for p in range(1, len(projects) + 1)], 420)
    for emp, pid in sorted(pairs):
        conn.execute("INSERT INTO assignments VALUES (?, ?, ?)", (emp, pid, rng.randrange(5, 400)))
    conn.commit()
    return conn


def build_shop() -> sqlite3.Connection:
    rng = random.Random(20240502)
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, country TEXT, signup_year INTEGER);
        CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT, price REAL, stock INTEGER);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                             order_date TEXT, status TEXT);
        CREATE TABLE order_items (order_id INTEGER REFERENCES orders(order_id), product_id INTEGER REFERENCES products(product_id),
                                  quantity INTEGER, PRIMARY KEY (order_id, product_id));
    """)
    for cid, name in enumerate(_names(rng, 120), 1):
        city = rng.choice(CITIES)
        conn.execute("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", (cid, name, city, COUNTRIES[city], rng.randint(2016, 2024)))
    pid = 0
    for cat in CATEGORIES:
        for word in PRODUCT_WORDS[cat]:
            pid += 1
            conn.execute("INSERT INTO products VALUES (?, ?, ?, ?, ?)",
                         (pid, f"{rng.choice(ADJECTIVES)} {word}", cat, round(rng.uniform(3, 250), 2), rng.randrange(0, 120)))
    for oid in range(1, 301):
        date = f"{rng.randint(2021, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        status = rng.choice(["delivered", "delivered", "delivered", "shipped", "cancelled", "pending"])
        conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?)", (oid, rng.randint(1, 120), date, status))
        for prod in rng.sample(range(1, pid + 1), rng.randint(1, 4)):
            conn.execute("INSERT INTO order_items VALUES (?, ?, ?)", (oid, prod, rng.randint(1, 5)))
    conn.commit()
    return conn


def _q(s: str) -> str:
    return s.replace("'", "''")


Template = Callable[[sqlite3.Connection], Iterator[tuple[str, str, str]]]  # -> (kind, question, gold)


def company_templates(conn: sqlite3.Connection) -> dict[str, Template]:
    depts = [r[0] for r in conn.execute("SELECT name FROM departments ORDER BY dept_id")]
    projects = [r[0] for r in conn.execute("SELECT name FROM projects ORDER BY project_id")]

    def count_dept(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for d in depts:
            yield ("query", f"How many employees work in the {d} department?",
                   f"SELECT COUNT(*) FROM employees AS e JOIN departments AS d ON e.dept_id = d.dept_id WHERE d.name = '{d}'")

    def avg_title(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for t in TITLES:
            yield ("query", f"What is the average salary of employees with the title {t}?",
                   f"SELECT AVG(salary) FROM employees WHERE title = '{t}'")

    def hired_after(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for i, d in enumerate(depts):
            y = 2016 + i
            yield ("query", f"List the names of employees in the {d} department hired after {y}, in alphabetical order.",
                   (f"SELECT e.name FROM employees AS e JOIN departments AS d ON e.dept_id = d.dept_id "
                   f"WHERE d.name = '{d}' AND e.hire_year > {y} ORDER BY e.name"))

    def top_earners(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for d in depts:
            yield ("query", f"Give the name and salary of the 3 best-paid employees of the {d} department, highest salary first.",
                   (f"SELECT e.name, e.salary FROM employees AS e JOIN departments AS d ON e.dept_id = d.dept_id "
                   f"WHERE d.name = '{d}' ORDER BY e.salary DESC, e.name LIMIT 3"))

    def project_hours(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for p in projects[::3]:
            yield ("query", f"How many hours in total are assigned to the project {p}?",
                   f"SELECT SUM(a.hours) FROM assignments AS a JOIN projects AS p ON a.project_id = p.project_id WHERE p.name = '{p}'")

    def project_members(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for p in projects[1::4]:
            yield ("query", f"Which employees work on the project {p}? Give their names.",
                   (f"SELECT e.name FROM employees AS e JOIN assignments AS a ON e.emp_id = a.emp_id "
                   f"JOIN projects AS p ON a.project_id = p.project_id WHERE p.name = '{p}'"))

    def active_projects(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for d in depts:
            yield ("query", f"Which active projects does the {d} department run, and what are their budgets?",
                   (f"SELECT p.name, p.budget FROM projects AS p JOIN departments AS d ON p.dept_id = d.dept_id "
                   f"WHERE d.name = '{d}' AND p.status = 'active'"))

    def busy(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for k in (2, 3, 4):
            yield ("query", f"Which employees are assigned to more than {k} projects? Give their names and the number of projects.",
                   (f"SELECT e.name, COUNT(*) FROM employees AS e JOIN assignments AS a ON e.emp_id = a.emp_id "
                   f"GROUP BY e.emp_id HAVING COUNT(*) > {k}"))

    def singles(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        yield ("query", "Which department has the highest total salary? Give its name.",
               ("SELECT d.name FROM departments AS d JOIN employees AS e ON e.dept_id = d.dept_id GROUP BY d.dept_id "
               "ORDER BY SUM(e.salary) DESC LIMIT 1"))
        yield ("query", "How many employees are not assigned to any project?",
               "SELECT COUNT(*) FROM employees WHERE emp_id NOT IN (SELECT emp_id FROM assignments)")
        yield ("query", "For each city, how many departments are located there?",
               "SELECT city, COUNT(*) FROM departments GROUP BY city")
        yield ("query", "Which employees earn more than their manager? Give the employee names.",
               "SELECT e.name FROM employees AS e JOIN employees AS m ON e.manager_id = m.emp_id WHERE e.salary > m.salary")
        yield ("query", "What is the name of the department with the largest budget, and in which city is it?",
               "SELECT name, city FROM departments ORDER BY budget DESC LIMIT 1")

    def hire(c: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        next_id = c.execute("SELECT MAX(emp_id) FROM employees").fetchone()[0] + 1
        for i, d in enumerate(depts):
            name = f"{FIRST[(i * 5) % len(FIRST)]} {LAST[(i * 7 + 3) % len(LAST)]}-{chr(65 + i)}"
            title, salary, year = TITLES[i % 5], 50_000 + 2_500 * i, 2025
            yield ("mutation", (f"A new employee, {name}, joins the {d} department as {title} with a salary of {salary} in {year}. "
                   f"Add them to the employees table with employee id {next_id + i} and no manager."),
                   (f"INSERT INTO employees (emp_id, name, dept_id, title, salary, hire_year, manager_id) "
                   f"VALUES ({next_id + i}, '{_q(name)}', (SELECT dept_id FROM departments WHERE name = '{d}'), '{title}', {salary}, {year}, NULL)"))

    def raise_dept(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for i, d in enumerate(depts):
            pct = 3 + i
            yield ("mutation", f"Give every employee of the {d} department a raise of {pct}% (salary multiplied by {1 + pct / 100:g}).",
                   (f"UPDATE employees SET salary = salary * {1 + pct / 100:g} "
                   f"WHERE dept_id = (SELECT dept_id FROM departments WHERE name = '{d}')"))

    def cancel_project(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for p in projects[2::5]:
            yield ("mutation", f"The project {p} was cancelled: delete its assignments and then the project itself.",
                   (f"DELETE FROM assignments WHERE project_id = (SELECT project_id FROM projects WHERE name = '{p}'); "
                   f"DELETE FROM projects WHERE name = '{p}'"))

    def complete_project(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for p in projects[3::6]:
            yield ("mutation", f"Mark the project {p} as completed (status 'completed').",
                   f"UPDATE projects SET status = 'completed' WHERE name = '{p}'")

    return {"count_dept": count_dept, "avg_title": avg_title, "hired_after": hired_after, "top_earners": top_earners,
            "project_hours": project_hours, "project_members": project_members, "active_projects": active_projects,
            "busy": busy, "single": singles, "hire": hire, "raise": raise_dept, "cancel_project": cancel_project,
            "complete_project": complete_project}


def shop_templates(conn: sqlite3.Connection) -> dict[str, Template]:
    customers = [r[0] for r in conn.execute("SELECT name FROM customers ORDER BY customer_id")]
    products = [r[0] for r in conn.execute("SELECT DISTINCT name FROM products ORDER BY product_id")]
    countries = sorted(set(COUNTRIES.values()))

    def orders_of(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for c in customers[::12]:
            yield ("query", f"How many orders has the customer {c} placed?",
                   f"SELECT COUNT(*) FROM orders AS o JOIN customers AS c ON o.customer_id = c.customer_id WHERE c.name = '{_q(c)}'")

    def sold(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for p in products[::6]:
            yield ("query", f"What total quantity of products named '{p}' has been ordered?",
                   f"SELECT SUM(oi.quantity) FROM order_items AS oi JOIN products AS p ON oi.product_id = p.product_id WHERE p.name = '{_q(p)}'")

    def cheap(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for i, cat in enumerate(CATEGORIES):
            x = 60 + 20 * i
            yield ("query", f"List the names and prices of {cat} products cheaper than {x}, from cheapest to most expensive.",
                   f"SELECT name, price FROM products WHERE category = '{cat}' AND price < {x} ORDER BY price")

    def new_customers(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for i, country in enumerate(countries):
            y = 2018 + i % 4
            yield ("query", f"Which customers from {country} signed up in {y} or later? Give their names.",
                   f"SELECT name FROM customers WHERE country = '{country}' AND signup_year >= {y}")

    def revenue(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for y in range(2021, 2025):
            yield ("query", f"What is the total revenue (price times quantity) of delivered orders placed in {y}?",
                   (f"SELECT SUM(p.price * oi.quantity) FROM orders AS o JOIN order_items AS oi ON o.order_id = oi.order_id "
                   f"JOIN products AS p ON oi.product_id = p.product_id WHERE o.status = 'delivered' AND o.order_date LIKE '{y}-%'"))

    def buyers(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for cat in CATEGORIES:
            yield ("query", f"How many distinct customers have ordered at least one {cat} product?",
                   (f"SELECT COUNT(DISTINCT o.customer_id) FROM orders AS o JOIN order_items AS oi ON o.order_id = oi.order_id "
                   f"JOIN products AS p ON oi.product_id = p.product_id WHERE p.category = '{cat}'"))

    def singles(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        yield ("query", "What is the average product price in each category?",
               "SELECT category, AVG(price) FROM products GROUP BY category")
        yield ("query", "Which city has the most customers?",
               "SELECT city FROM customers GROUP BY city ORDER BY COUNT(*) DESC LIMIT 1")
        yield ("query", "How many orders are still pending?", "SELECT COUNT(*) FROM orders WHERE status = 'pending'")
        yield ("query", "Which products are out of stock? Give their names and categories.",
               "SELECT name, category FROM products WHERE stock = 0")
        yield ("query", "List the 5 customers who placed the most orders, with their order counts, most orders first.",
               ("SELECT c.name, COUNT(*) AS n FROM customers AS c JOIN orders AS o ON o.customer_id = c.customer_id "
               "GROUP BY c.customer_id ORDER BY n DESC, c.name LIMIT 5"))

    def add_product(c: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        next_id = c.execute("SELECT MAX(product_id) FROM products").fetchone()[0] + 1
        for i, cat in enumerate(CATEGORIES):
            name, price, stock = f"Limited {PRODUCT_WORDS[cat][i]}", 19.99 + 5 * i, 10 + i
            yield ("mutation", f"Add a new {cat} product called '{name}' with id {next_id + i}, price {price:g} and {stock} units in stock.",
                   f"INSERT INTO products (product_id, name, category, price, stock) VALUES ({next_id + i}, '{name}', '{cat}', {price:g}, {stock})")

    def discount(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for i, cat in enumerate(CATEGORIES):
            pct = 10 + 5 * (i % 3)
            yield ("mutation", f"Reduce the price of every {cat} product by {pct}% (multiply the price by {1 - pct / 100:g}).",
                   f"UPDATE products SET price = price * {1 - pct / 100:g} WHERE category = '{cat}'")

    def purge_cancelled(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for y in range(2022, 2025):
            yield ("mutation", f"Delete every cancelled order placed before {y}, together with its order items.",
                   (f"DELETE FROM order_items WHERE order_id IN (SELECT order_id FROM orders WHERE status = 'cancelled' AND order_date < '{y}-01-01'); "
                   f"DELETE FROM orders WHERE status = 'cancelled' AND order_date < '{y}-01-01'"))

    def restock(_: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
        for i, cat in enumerate(CATEGORIES):
            yield ("mutation", f"Every {cat} product with fewer than 20 units in stock gets {25 + i} more units.",
                   f"UPDATE products SET stock = stock + {25 + i} WHERE category = '{cat}' AND stock < 20")

    return {"orders_of": orders_of, "sold": sold, "cheap": cheap, "new_customers": new_customers, "revenue": revenue,
            "buyers": buyers, "single": singles, "add_product": add_product, "discount": discount,
            "purge_cancelled": purge_cancelled, "restock": restock}


DATABASES: dict[str, tuple[Callable[[], sqlite3.Connection], Callable[[sqlite3.Connection], dict[str, Template]]]] = {
    "company": (build_company, company_templates),
    "shop": (build_shop, shop_templates),
}


def _dump(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    return [(t, *row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid')]


def generate() -> tuple[dict[str, bytes], list[BuiltinTask]]:
    """Build the databases (serialized) and the validated task list."""
    databases: dict[str, bytes] = {}
    tasks: list[BuiltinTask] = []
    for db, (build, templates) in DATABASES.items():
        conn = build()
        databases[db] = conn.serialize()
        before = _dump(conn)
        for key, template in templates(conn).items():
            for i, (kind, question, gold) in enumerate(template(conn)):
                if kind == "query":
                    if not conn.execute(gold).fetchall():
                        continue
                else:
                    trial = sqlite3.connect(":memory:")
                    trial.deserialize(databases[db])
                    trial.executescript(gold)
                    changed = _dump(trial) != before
                    trial.close()
                    if not changed:
                        continue
                tasks.append(BuiltinTask(task_id=f"builtin-{db}-{key}-{i:02d}", db=db, kind=kind, question=question,
                                         gold=gold, split=_split(i + len(key))))
        conn.close()
    return databases, tasks
