#!/usr/bin/env python3
"""Every method member folder under efficiency/ (a folder below a family that
holds its own code) has a README.md card with the sections a user needs.

usage: check_method_cards.py ROOT
"""
import os
import sys

SECTIONS = ['## When it helps', '## Keys', '## Measured in brisk', '## Paper', '## Code']
NOT_METHODS = {'speedup'}  # the measuring harness, not a method


def main():
    root = os.path.join(sys.argv[1], 'efficiency')
    bad, seen = [], 0
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == '.' or rel.split(os.sep)[0] in NOT_METHODS:
            continue
        code = [f for f in files if f.endswith(('.cpp', '.h'))]
        is_member = bool(code) and (os.sep in rel or not any(
            os.path.isdir(os.path.join(dirpath, d)) for d in dirs))
        if not is_member:
            continue
        seen += 1
        card = os.path.join(dirpath, 'README.md')
        if not os.path.exists(card):
            bad.append('efficiency/%s has no README.md method card' % rel)
            continue
        text = open(card, encoding='utf-8').read()
        for s in SECTIONS:
            if s not in text:
                bad.append('efficiency/%s/README.md lacks "%s"' % (rel, s))
    for b in bad:
        print('method card:', b)
    print('check_method_cards: %d members, %d problems' % (seen, len(bad)))
    return 1 if bad or seen == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
