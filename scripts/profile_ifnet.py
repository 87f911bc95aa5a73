"""Profile retime's IFNet paths against the reference Practical-RIFE IFNet on one pair of real frames.

Usage: PYTHONPATH=. .venv/bin/python scripts/profile_ifnet.py HEIGHT WIDTH [THREADS]
Prints ms per synthesized frame (both frames encoded in each call, as the reference engine does), the ratio to the
reference, PSNR of each path's uint8 output against the reference's, then a torch.profiler table of the default
path (the convolution dtype the engine picks on this CPU: bfloat16 with AVX-512 BF16 or AMX, else float32). Notes and results: docs/performance.md.
"""
import torch, torch.nn.functional as F, time, sys
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv)>3 else 2)
from retime.interpolate.ifnet import IFNet
from retime._process import keep_freed_memory
from retime.interpolate.engine import choose_device
keep_freed_memory()  # as the CLI does
DEFAULT_DTYPE = choose_device('cpu')[1]
from retime.interpolate.weights import load_state_dict, load_into, strip_prefixes
from tests.helpers import reference_ifnet, WEIGHTS
from pathlib import Path
net = IFNet().eval(); p = Path('weights/flownet.pkl'); load_into(net, load_state_dict(p), p)
ref = reference_ifnet().IFNet(torch.device('cpu')).eval(); ref.load_state_dict(strip_prefixes(torch.load(WEIGHTS, map_location='cpu', weights_only=True)))
import av
H, W = int(sys.argv[1]), int(sys.argv[2])
fr=[]
with av.open('assets/clips/bigbuckbunny.mp4') as c:
    for i,f in enumerate(c.decode(video=0)):
        if i in (60,62): fr.append(torch.from_numpy(f.to_ndarray(format='rgb24', width=W, height=H)).permute(2,0,1)[None].float()/255)
        if i>62: break
a, b = [F.pad(x, (0, -W % 128, 0, -H % 128)) for x in fr]
clock = time.perf_counter
def q(x): return (x.clamp(0,1)*255).round()
with torch.inference_mode():
    t = torch.tensor([0.5])
    r = ref(torch.cat((a,b),1), 0.5, [16,8,4,2,1])[2][4]
    variants = {
      'fast': lambda: net.forward_sparse(net.encode_frame(a), net.encode_frame(b), t),
      'fast_bf16': lambda: net.forward_sparse(net.encode_frame(a), net.encode_frame(b), t, conv_dtype=torch.bfloat16),
      'fast_bf16_enc': lambda: net.forward_sparse(*[torch.cat((x, torch.autocast('cpu', dtype=torch.bfloat16)(net.encode)(x).float()),1) for x in (a,b)], t, conv_dtype=torch.bfloat16),
    }
    res = {}
    for name, fn in list(variants.items()) + [('ref', lambda: ref(torch.cat((a,b),1), 0.5, [16,8,4,2,1])[2][4])]:
        g = fn(); mse = ((q(r)-q(g))**2).mean().item()
        fn(); t0 = clock(); fn(); res[name] = (clock()-t0)*1000
        print(name, f'{res[name]:.0f} ms', 'psnr vs ref (uint8)', 10*torch.log10(torch.tensor(255**2/max(mse,1e-12))).item())
    for k in variants: print(k, 'ratio', res[k]/res['ref'])
from torch.profiler import profile, ProfilerActivity
with torch.inference_mode():  # channels-last, as the engine's prepare() makes them
    st0, st1 = (x.contiguous(memory_format=torch.channels_last) for x in (net.encode_frame(a), net.encode_frame(b)))
print('profiled: forward_sparse with conv_dtype', DEFAULT_DTYPE)
with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    net.forward_sparse(st0, st1, t, conv_dtype=DEFAULT_DTYPE)
print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=30))
