#!/usr/bin/env python3
"""Lists the C++ functions longer than a limit (the project's rule: 80 lines outside src/kernels).

    python3 scripts/long_functions.py [LIMIT] [FILES...]

LIMIT defaults to 80; FILES default to the tracked .cpp/.h files under src/ (without src/kernels/),
tests/, fuzz/ and bench/. Prints "lines path:line signature" per function, longest first, and
exits 1 when there is one. A function body is a brace block whose header has a parameter list,
outside any other function (lambdas count towards their function); comments, string and raw
string literals are blanked first. A heuristic for this code base's style, not a C++ parser.
"""
import re, sys
def strip(src):
    out=[];i=0;n=len(src)
    while i<n:
        c=src[i]
        if src.startswith('//',i):
            j=src.find('\n',i); j=n if j<0 else j; out.append(' '*(j-i)); i=j
        elif src.startswith('/*',i):
            j=src.find('*/',i+2); j=n if j<0 else j+2
            out.append(re.sub(r'[^\n]',' ',src[i:j])); i=j
        elif src.startswith('R"',i):
            m=re.match(r'R"([^(]*)\(',src[i:]); d=m.group(1); j=src.find(')'+d+'"',i)+len(d)+2
            out.append(re.sub(r'[^\n]',' ',src[i:j])); i=j
        elif c in '"\'':
            j=i+1
            while j<n and src[j]!=c:
                j+= 2 if src[j]=='\\' else 1
            out.append(c+' '*(j-i-1)+c); i=j+1
        else: out.append(c); i+=1
    return ''.join(out)
def scan(path, limit):
    s=strip(open(path).read())
    stack=[]  # each: 'fn' or 'scope' or 'block'
    hdr_start=0; res=[]
    for i,c in enumerate(s):
        if c=='{':
            infn=any(k[0]=='fn' for k in stack)
            header=s[hdr_start:i]
            kind='block'
            if not infn:
                h=header.strip()
                if re.match(r'^(namespace|class|struct|enum|union)\b',h) or re.search(r'\b(class|struct|enum|union|namespace)\s+[\w:]*\s*(final)?\s*(:[^()]*)?$',h) or h.endswith('=') or h=='' or h.startswith('extern'):
                    kind='scope'
                elif '(' in h:
                    kind='fn'
            start_line=s.count('\n',0,hdr_start+len(header)-len(header.lstrip()))+1
            stack.append((kind,start_line,header.strip().split('\n')[0][:90] if kind=='fn' else ''))
            hdr_start=i+1
        elif c=='}':
            if stack:
                kind,sl,name=stack.pop()
                if kind=='fn':
                    el=s.count('\n',0,i)+1
                    if el-sl+1>limit: res.append((el-sl+1,path,sl,name))
            hdr_start=i+1
        elif c==';':
            if not any(k[0]=='fn' for k in stack): hdr_start=i+1
    return res
def default_files():
    import subprocess
    files = subprocess.run(["git", "ls-files", "src/*.cpp", "src/*.h", "tests/*.cpp", "tests/*.h",
                            "fuzz/*.cpp", "bench/*.cpp"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [f for f in files if not f.startswith("src/kernels/")]
limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
out = []
for p in (sys.argv[2:] or default_files()):
    out += scan(p, limit)
for n, p, l, name in sorted(out, reverse=True):
    print(f"{n:4d} {p}:{l} {name}")
sys.exit(1 if out else 0)
