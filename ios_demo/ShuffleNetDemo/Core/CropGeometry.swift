import CoreGraphics
import Foundation

/// The contract's geometry, done by Core ML on a downsampled copy of the picture.
///
/// Python (`shufflenet_deploy/preprocess.py`) resizes the shorter side to resize_size (the longer side truncated to
/// whole pixels), then crops img_size x img_size at offset floor((resized - img_size) / 2). Output pixel i of the
/// crop is centred on source position (offset + i + 0.5) * source / resized. `regionOfInterest` is exactly the
/// source rectangle those pixels tile, so Core ML's crop to it, scaled to img_size x img_size (`.scaleFill`),
/// samples the same positions as Python, integer rounding included. `CropGeometryTests` checks this against
/// positions Python computed, and `CoreMLPreprocessingTests` what Core ML makes of it.
enum CropGeometry {
    /// Longest side of the copy the app decodes, for the screen and the model alike (a 3x phone screen is 1290 px
    /// wide, an iPad's 2048): 11 MB for a 3:2 photo, whatever the camera's resolution.
    static let displayMaxPixelSize = 2048
    /// The copy's shorter side is never less than this many times resize_size (panoramas get a longer copy).
    static let modelCopyFactor = 2

    /// The contract's resized size: (width, height) with the shorter side at `resizeSize`, the longer truncated.
    static func resizedSize(width: Int, height: Int, resizeSize: Int) -> (width: Int, height: Int) {
        if width <= height {
            return (resizeSize, Int(Double(resizeSize * height) / Double(width)))
        }
        return (Int(Double(resizeSize * width) / Double(height)), resizeSize)
    }

    /// The contract's crop as a region of the (upright) picture, normalised to its width and height, with Core ML's
    /// (Vision's) origin at the lower-left corner. It depends only on the picture's proportions, so it applies
    /// unchanged to a downsampled copy: pass the original size.
    static func regionOfInterest(width: Int, height: Int, imgSize: Int, resizeSize: Int) -> CGRect {
        let resized = resizedSize(width: width, height: height, resizeSize: resizeSize)
        let left = (resized.width - imgSize) / 2  // non-negative: resize_size >= img_size, so / is floor
        let top = (resized.height - imgSize) / 2
        let w = Double(resized.width)
        let h = Double(resized.height)
        return CGRect(x: Double(left) / w, y: 1 - Double(top + imgSize) / h,
                      width: Double(imgSize) / w, height: Double(imgSize) / h)
    }

    /// `kCGImageSourceThumbnailMaxPixelSize` (the longer side) of the copy the app decodes, or nil to decode the
    /// picture at its own size (up to 2048 px, at most 16 MB). A larger picture becomes a 2048 px copy, longer only
    /// if its shorter side would drop below `factor * resizeSize`: a 24 MP photo is an 11 MB copy instead of a
    /// 96 MB bitmap. ios_demo/tools/downsample_parity.py emulates this rule and measures its cost in logits (README).
    static func modelCopyMaxPixelSize(width: Int, height: Int, resizeSize: Int,
                                      displayMax: Int = CropGeometry.displayMaxPixelSize,
                                      factor: Int = CropGeometry.modelCopyFactor) -> Int? {
        let shortSide = min(width, height)
        let longSide = max(width, height)
        guard longSide > displayMax else { return nil }
        let needed = Int((Double(factor * resizeSize * longSide) / Double(shortSide)).rounded(.up))
        let maxPixelSize = max(displayMax, needed)
        return maxPixelSize >= longSide ? nil : maxPixelSize
    }
}
