#!/usr/bin/env python3
"""Fails on an include that goes up the layer order (docs/architecture.md).

usage: check_layers.py ROOT LAYER:DEP,DEP ... (from CMakeLists.txt's
BRISK_LAYER_DEPS_*), or check_layers.py --self-test.
A file under <layer>/ may include "<layer>/..." and "<dep>/..." for the deps
listed; the umbrella "brisk.h" is for programs outside the library.
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
EXTS = ('.h', '.cpp', '.cu', '.cuh')


def parse_deps(args):
    deps = {}
    for a in args:
        layer, _, rest = a.partition(':')
        deps[layer] = set(d for d in rest.split(',') if d)
    for layer, ds in deps.items():
        for d in ds:
            if d not in deps:
                raise SystemExit('check_layers: %s depends on unknown layer %s' % (layer, d))
    # the dependency graph must be acyclic
    state = {}

    def visit(n, path):
        if state.get(n) == 1:
            raise SystemExit('check_layers: layer cycle: ' + ' -> '.join(path + [n]))
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in deps[n]:
            visit(d, path + [n])
        state[n] = 2
    for n in deps:
        visit(n, [])
    return deps


def violations(root, deps):
    bad = []
    for layer, allowed in deps.items():
        top = os.path.join(root, layer)
        for dirpath, _, files in os.walk(top):
            for f in files:
                if not f.endswith(EXTS):
                    continue
                path = os.path.join(dirpath, f)
                with open(path, encoding='utf-8', errors='replace') as fh:
                    text = fh.read()
                for inc in INCLUDE.findall(text):
                    first = inc.split('/')[0]
                    rel = os.path.relpath(path, root)
                    if inc == 'brisk.h':
                        bad.append('%s includes the user umbrella "brisk.h"' % rel)
                    elif '/' in inc and first in deps and first != layer and first not in allowed:
                        bad.append('%s (layer %s) includes "%s" (layer %s): %s may use only %s' %
                                   (rel, layer, inc, first, layer, ', '.join(sorted(allowed | {layer}))))
    return bad


def self_test():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, 'core'))
        os.makedirs(os.path.join(d, 'nn'))
        with open(os.path.join(d, 'nn', 'a.h'), 'w') as f:
            f.write('#include "core/t.h"\n')
        with open(os.path.join(d, 'core', 't.h'), 'w') as f:
            f.write('#include "core/u.h"\n')
        deps = parse_deps(['core:', 'nn:core'])
        assert violations(d, deps) == [], 'a downward include was refused'
        with open(os.path.join(d, 'core', 'u.h'), 'w') as f:
            f.write('#include "nn/a.h"\n')
        v = violations(d, deps)
        assert len(v) == 1 and 'core/u.h' in v[0] and '"nn/a.h"' in v[0], v
        try:
            parse_deps(['core:nn', 'nn:core'])
        except SystemExit as e:
            assert 'cycle' in str(e)
        else:
            raise AssertionError('a layer cycle was accepted')
    print('check_layers: self-test passed')


def main():
    if sys.argv[1:] == ['--self-test']:
        self_test()
        return 0
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, deps = sys.argv[1], parse_deps(sys.argv[2:])
    bad = violations(root, deps)
    for b in bad:
        print('layer violation:', b)
    print('check_layers: %d layers, %d violations' % (len(deps), len(bad)))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
