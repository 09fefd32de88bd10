#!/usr/bin/env python3
"""Runs an image recipe's container-loader tasks as bitbake would, without bitbake.

    isar-include.py ENGINE_INC WORKDIR D [VAR=VALUE ...]

ENGINE_INC is isar/.../docker-loader.inc or podman-loader.inc. Its one-line assignments and those
of the container-loader.inc it requires (`=`, `?=`, `+=`, double-quoted), then the VAR=VALUE
arguments (the recipe's own settings, SRC_URI and BPN among them), make the variables; `${VAR}`
expands as bitbake expands it. Then do_install runs (its shell body, expanded, under `sh -e`), and
do_install_fetched_containers (its Python body, with stand-ins for bitbake's `d` and the parts of
`bb` it calls). The file:// entries of SRC_URI are expected in WORKDIR already, as do_unpack
leaves them, and so are the docker:// images as the fetcher unpacks them. Last, it prints the
package's Depends as ISAR's debianize writes them (deb_list_beautify of DEBIAN_DEPENDS).
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap

ASSIGNMENT = re.compile(r'^([A-Za-z0-9_-]+)\s*(\?=|\+=|=)\s*"([^"]*)"\s*$')
REFERENCE = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")


def read_assignments(path, variables):
    """The include chain's one-line assignments, `require`d files first, as bitbake reads them."""
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        required = re.match(r"^require\s+(\S+)\s*$", line)
        if required:
            read_assignments(os.path.join(os.path.dirname(path), required.group(1)), variables)
            continue
        m = ASSIGNMENT.match(line)
        if not m:
            continue
        name, op, value = m.groups()
        if op == "=":
            variables[name] = value
        elif op == "?=":
            variables.setdefault(name, value)
        else:
            variables[name] = (variables.get(name, "") + " " + value).strip()


def expand(text, variables):
    while True:
        expanded = REFERENCE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
        if expanded == text:
            return text
        text = expanded


def function_body(text, header, indent):
    """The body of `header {` ... the first line that is only `}`."""
    start = text.index(header + " {\n") + len(header) + 3
    end = text.index("\n}\n", start)
    body = text[start:end]
    return textwrap.dedent(body) if indent else body


class Data:
    """bitbake's datastore, as far as the tasks read it."""

    def __init__(self, variables):
        self.variables = variables

    def getVar(self, name, expand_it=True):
        value = self.variables.get(name)
        return expand(value, self.variables) if value is not None and expand_it else value


class Fatal(Exception):
    pass


class BB:
    """The parts of bitbake's `bb` module the task calls."""

    class fetch:
        @staticmethod
        def decodeurl(url):
            # bb.fetch2.decodeurl for scheme://host/path;name=value...
            scheme, rest = url.split("://", 1)
            location, _, parameters = rest.partition(";")
            parm = dict(p.split("=", 1) for p in parameters.split(";") if p)
            if scheme == "file":
                return scheme, "", location, "", "", parm
            host, slash, path = location.partition("/")
            return scheme, host, "/" + path if slash else "/", "", "", parm

    class utils:
        @staticmethod
        def remove(path, recurse=False):
            if os.path.isdir(path) and recurse:
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)

        @staticmethod
        def mkdirhier(path):
            os.makedirs(path, exist_ok=True)

    class process:
        @staticmethod
        def run(cmd, **options):
            subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **options)

    @staticmethod
    def note(message):
        print("NOTE: " + message, file=sys.stderr)

    @staticmethod
    def fatal(message):
        raise Fatal(message)


def main():
    engine_inc, workdir, dest = sys.argv[1:4]
    variables = {}
    read_assignments(engine_inc, variables)
    for setting in sys.argv[4:]:
        name, value = setting.split("=", 1)
        variables[name] = value
    variables.update(WORKDIR=workdir, D=dest)
    variables.setdefault("PN", variables.get("BPN", ""))

    include = os.path.join(os.path.dirname(engine_inc), "container-loader.inc")
    with open(include) as f:
        text = f.read()

    os.makedirs(dest, exist_ok=True)
    shell = expand(function_body(text, "do_install()", indent=False), variables)
    subprocess.run(["sh", "-e", "-c", shell], check=True)

    python = function_body(text, "python do_install_fetched_containers()", indent=True)
    task = "def do_install_fetched_containers(d):\n" + textwrap.indent(python, "    ")
    scope = {"bb": BB}
    exec(compile(task, include, "exec"), scope)
    try:
        scope["do_install_fetched_containers"](Data(variables))
    except Fatal as e:
        print("ERROR: " + str(e), file=sys.stderr)
        sys.exit(1)

    depends = [p.strip() for p in Data(variables).getVar("DEBIAN_DEPENDS").split(",")]
    print(", ".join(p for p in depends if p))


if __name__ == "__main__":
    main()
