"""
A screenshot of an HTML page (runs.py report's) as headless Chromium shows it, with no network.

    python scripts/screenshot.py report.html shot.png [--width=1100] [--height=4000]

Needs Chromium (Debian: apt-get install chromium). It runs offline: every host name fails to
resolve, so a page that needed a CDN, a web font or a remote image would show the gap. The page is
taken at --width and up to --height CSS pixels, and the empty background below it is cut off. A
.png is kept as Chromium wrote it; .jpg or .webp are converted with Pillow (installed with
matplotlib). Exit status: 0 done, 2 no Chromium or a bad argument.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

CHROMIUM = ['chromium', 'chromium-browser', 'google-chrome']
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--hide-scrollbars', '--force-device-scale-factor=1', '--host-resolver-rules=MAP * ~NOTFOUND']


def find_chromium():
    return next(filter(None, map(shutil.which, CHROMIUM)), None)


def screenshot(page, out, width=1100, height=4000):
    chromium = find_chromium()
    if chromium is None:
        sys.exit('screenshot.py: error: no Chromium here (Debian: apt-get install chromium)')
    with tempfile.TemporaryDirectory() as profile:
        png = out if out.lower().endswith('.png') else os.path.join(profile, 'shot.png')
        command = [chromium, *FLAGS, f'--user-data-dir={profile}', f'--window-size={width},{height}',
                   f'--screenshot={os.path.abspath(png)}', 'file://' + os.path.abspath(page)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not os.path.exists(png):
            sys.exit(f'screenshot.py: error: Chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}')
        crop(png, out)


def crop(png, out):
    """Cut the page's empty background off the bottom, and save in out's format."""
    from PIL import Image, ImageChops
    image = Image.open(png).convert('RGB')
    background = Image.new('RGB', image.size, image.getpixel((image.width - 1, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    if box:
        image = image.crop((0, 0, image.width, min(image.height, box[3] + 24)))
    image.save(out, quality=88) if not out.lower().endswith('.png') else image.save(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('page', help='the HTML file')
    parser.add_argument('out', help='the image to write: .png, .jpg or .webp')
    parser.add_argument('--width', type=int, default=1100, help='CSS pixels (default 1100)')
    parser.add_argument('--height', type=int, default=4000, help='at most this many (default 4000)')
    args = parser.parse_args()
    if not os.path.isfile(args.page):
        parser.error(f'{args.page}: no such file')
    screenshot(args.page, args.out, args.width, args.height)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
