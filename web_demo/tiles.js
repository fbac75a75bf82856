// Reading a decoded photo tile by tile, so no canvas ever exceeds a phone's limit.
//
// iOS Safari caps a canvas at 16,777,216 pixels (4096 x 4096); a larger one
// silently draws nothing, getImageData then returns zeros and the page would
// classify a black image.  A phone camera's 24 MP photo is over that limit, so
// the page never draws the whole photo: it copies the source rectangle the crop
// actually reads (CropResizer.window), TILE x TILE pixels at a time, into one
// small reused canvas and feeds each tile's pixels to the CropResizer.  The
// copy is 1:1 (no scaling), so the pixels are the decoded ones.
//
// readTiles is pure (the canvas work is the `readRect` callback) so node tests
// cover the tiling and the blank-readback check without a browser.

/** Side of a tile: 1 M pixels, 4 MB of RGBA, far below every browser's canvas limit. */
export const TILE = 1024;
/** iOS Safari's canvas area limit, for messages. */
export const SAFARI_CANVAS_LIMIT = 16_777_216;

/** A readback that returned nothing: the page refuses rather than classify a black image. */
export class BlankImageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BlankImageError';
  }
}

/**
 * Feed `resizer` (a CropResizer) the pixels of its window, tile by tile, in the
 * order it needs.  readRect(x, y, w, h) returns that rectangle's RGBA bytes.
 * Returns {pixels, tiles, area, translucent}: the resized crop (HWC float64),
 * how many tiles and pixels were read, and how many of them were not opaque.
 */
export function readTiles(resizer, readRect, tile = TILE) {
  if (!Number.isInteger(tile) || tile < 1) throw new RangeError(`bad tile size ${tile}`);
  const { x0, y0, x1, y1 } = resizer.window;
  let tiles = 0;
  let area = 0;
  let translucent = 0;
  let anyValue = false;
  for (let y = y0; y < y1; y += tile) {
    const h = Math.min(tile, y1 - y);
    for (let x = x0; x < x1; x += tile) {
      const w = Math.min(tile, x1 - x);
      const rgba = readRect(x, y, w, h);
      if (!rgba || rgba.length !== w * h * 4) {
        throw new BlankImageError(`the browser returned no pixels for the image area at ${x},${y} (${w}x${h})`);
      }
      for (let p = 3; p < rgba.length; p += 4) {
        if (rgba[p] !== 255) translucent++;
      }
      // A failed readback is all zeros (transparent black); any other byte means real pixels came back.
      if (!anyValue) anyValue = rgba.some((v) => v !== 0);
      resizer.addTile(rgba, x, y, w, h);
      tiles++;
      area += w * h;
    }
  }
  if (area > 0 && !anyValue) {
    throw new BlankImageError('the browser read the image back as empty (every pixel transparent black), so there is nothing '
      + 'to classify. Phones do this when an image exceeds their canvas or memory limits; if the image really is fully '
      + 'transparent, choose one with visible pixels.');
  }
  return { pixels: resizer.result(), tiles, area, translucent };
}
