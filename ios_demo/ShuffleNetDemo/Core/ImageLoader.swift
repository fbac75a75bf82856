import CoreGraphics
import Foundation
import ImageIO

/// A picture ready for the screen and the model: upright, 8-bit sRGB, never the full-size bitmap of a large photo.
/// CGImage is immutable and thread-safe, so this crosses from the classifier's actor to the main actor.
struct PreparedImage: @unchecked Sendable {
    /// Upright (EXIF orientation applied), 8-bit sRGB, no alpha; at most 2048 px on its longer side unless its
    /// shorter side needs more (`CropGeometry.modelCopyMaxPixelSize`), or the picture's own size if that is smaller.
    let image: CGImage
    /// The upright size of the original picture: the crop is computed on it.
    let originalWidth: Int
    let originalHeight: Int
}

/// Decodes pictures with ImageIO's thumbnail API, which reads a JPEG at a reduced DCT scale and never allocates
/// the full-size bitmap of a large photo (96 MB for 24 MP). Runs wherever it is called: the classifier actor
/// calls it, off the main thread.
enum ImageLoader {
    static func prepare(_ data: Data, resizeSize: Int) throws -> PreparedImage {
        let sourceOptions = [kCGImageSourceShouldCache: false] as CFDictionary
        guard let source = CGImageSourceCreateWithData(data as CFData, sourceOptions),
              CGImageSourceGetCount(source) > 0 else {
            throw DemoError.unreadableImage("This file is not an image that iOS can read.")
        }
        let (width, height) = try uprightSize(of: source)
        let maxPixelSize = CropGeometry.modelCopyMaxPixelSize(width: width, height: height, resizeSize: resizeSize)
        let image = try sRGB8(thumbnail(of: source, maxPixelSize: maxPixelSize ?? max(width, height)))
        return PreparedImage(image: image, originalWidth: width, originalHeight: height)
    }

    /// The picture's size once its EXIF orientation is applied (orientations 5-8 turn it by 90 degrees).
    static func uprightSize(of source: CGImageSource) throws -> (width: Int, height: Int) {
        guard let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any],
              let width = properties[kCGImagePropertyPixelWidth] as? Int,
              let height = properties[kCGImagePropertyPixelHeight] as? Int,
              width > 0, height > 0 else {
            throw DemoError.unreadableImage("This image has no size that iOS can read.")
        }
        let orientation = properties[kCGImagePropertyOrientation] as? Int ?? 1
        return orientation >= 5 ? (height, width) : (width, height)
    }

    /// An upright decode whose longer side is `maxPixelSize` (never enlarged).
    static func thumbnail(of source: CGImageSource, maxPixelSize: Int) throws -> CGImage {
        let options: [CFString: Any] = [
            // Always from the full image: an embedded EXIF thumbnail is only 160-320 px wide.
            kCGImageSourceCreateThumbnailFromImageAlways: true,
            // Apply the EXIF orientation, as Python does (ImageOps.exif_transpose): the result is upright.
            kCGImageSourceCreateThumbnailWithTransform: true,
            kCGImageSourceThumbnailMaxPixelSize: maxPixelSize,
            // Decode now, on this thread, rather than lazily on the main thread at the first draw.
            kCGImageSourceShouldCacheImmediately: true,
        ]
        guard let image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary) else {
            throw DemoError.unreadableImage("iOS could not decode this image.")
        }
        return image
    }

    /// `image` redrawn at the same size into an 8-bit sRGB bitmap without alpha. A Display P3 photo is
    /// colour-matched to sRGB here (Python ignores colour profiles: see the README); an untagged or sRGB
    /// picture keeps its exact values (`ImageDecodeTests`). Transparent pixels end up composited over black.
    static func sRGB8(_ image: CGImage) throws -> CGImage {
        guard let space = CGColorSpace(name: CGColorSpace.sRGB),
              let context = CGContext(data: nil, width: image.width, height: image.height, bitsPerComponent: 8,
                                      bytesPerRow: 0, space: space,
                                      bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else {
            throw DemoError.unreadableImage("Could not allocate a \(image.width)x\(image.height) bitmap.")
        }
        context.interpolationQuality = .none  // same size: a copy, not a resample
        context.setFillColor(CGColor(red: 0, green: 0, blue: 0, alpha: 1))
        context.fill(CGRect(x: 0, y: 0, width: image.width, height: image.height))
        context.draw(image, in: CGRect(x: 0, y: 0, width: image.width, height: image.height))
        guard let copy = context.makeImage() else {
            throw DemoError.unreadableImage("Could not convert the image to sRGB.")
        }
        return copy
    }

    /// The RGB bytes of an image, row by row (height x width x 3), as Python's decoder returns them.
    /// Used by the tests and by the self-test's pixel check.
    static func rgbBytes(of image: CGImage) throws -> [UInt8] {
        let width = image.width
        let height = image.height
        guard let space = CGColorSpace(name: CGColorSpace.sRGB),
              let context = CGContext(data: nil, width: width, height: height, bitsPerComponent: 8,
                                      bytesPerRow: width * 4, space: space,
                                      bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else {
            throw DemoError.unreadableImage("Could not allocate a \(width)x\(height) bitmap.")
        }
        context.interpolationQuality = .none
        context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
        guard let data = context.data else {
            throw DemoError.unreadableImage("Could not read the image's pixels.")
        }
        let rgbx = data.bindMemory(to: UInt8.self, capacity: width * height * 4)
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for pixel in 0..<(width * height) {
            rgb[3 * pixel] = rgbx[4 * pixel]
            rgb[3 * pixel + 1] = rgbx[4 * pixel + 1]
            rgb[3 * pixel + 2] = rgbx[4 * pixel + 2]
        }
        return rgb
    }
}
