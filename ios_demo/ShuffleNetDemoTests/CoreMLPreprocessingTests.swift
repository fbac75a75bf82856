import CoreGraphics
import CoreML
import CoreVideo
import Vision
import XCTest

/// What Core ML's crop/scale (the app's `cropRect` + `.scaleFill`) makes of pictures, against Python's resize and
/// crop of the same pictures (Resources/ios_golden.json "scaler"). Core ML's resampling filter is not documented,
/// so the numbers are printed for the record; the assertions check what must hold whatever the filter is.
final class CoreMLPreprocessingTests: XCTestCase {
    /// Core ML's crop/scale of `image` to img_size x img_size, as RGB values in [0, 255], row by row.
    private func coreMLPixels(_ image: CGImage, roi: CGRect, imgSize: Int) throws -> [Double] {
        let options: [MLFeatureValue.ImageOption: Any] = [
            .cropRect: roi,
            .cropAndScale: VNImageCropAndScaleOption.scaleFill.rawValue,
        ]
        let value = try MLFeatureValue(cgImage: image, pixelsWide: imgSize, pixelsHigh: imgSize,
                                       pixelFormatType: kCVPixelFormatType_32BGRA, options: options)
        let buffer = try XCTUnwrap(value.imageBufferValue)
        XCTAssertEqual(CVPixelBufferGetWidth(buffer), imgSize)
        XCTAssertEqual(CVPixelBufferGetHeight(buffer), imgSize)
        CVPixelBufferLockBaseAddress(buffer, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let base = try XCTUnwrap(CVPixelBufferGetBaseAddress(buffer)).assumingMemoryBound(to: UInt8.self)
        let bytesPerRow = CVPixelBufferGetBytesPerRow(buffer)
        var rgb: [Double] = []
        rgb.reserveCapacity(imgSize * imgSize * 3)
        for y in 0..<imgSize {
            for x in 0..<imgSize {
                let pixel = base + y * bytesPerRow + 4 * x  // B, G, R, A
                rgb.append(Double(pixel[2]))
                rgb.append(Double(pixel[1]))
                rgb.append(Double(pixel[0]))
            }
        }
        return rgb
    }

    private func meanAbs(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).reduce(0.0) { $0 + abs($1.0 - $1.1) } / Double(max(a.count, 1))
    }

    func testCropAndScaleAgainstPythonsResize() throws {
        let golden = try TestResources.decode(IOSGolden.self, from: "ios_golden.json")
        XCTAssertFalse(golden.scaler.isEmpty)
        var report = ["picture        contract  mean|Δ| ours  max|Δ| ours  mean|Δ| y-flipped  mean|Δ| centre crop"]
        var ours = 0.0
        var flippedTotal = 0.0
        for picture in golden.scaler {
            let png = try XCTUnwrap(Data(base64Encoded: picture.pngBase64))
            // The app's own decode; these pictures are small enough to be used as they are.
            let image = try ImageLoader.prepare(png, resizeSize: 256).image
            XCTAssertEqual(image.width, picture.width)
            for contract in picture.contracts {
                let python = try Base64.float32LE(contract.pixelsF32leB64)
                XCTAssertEqual(python.count, contract.imgSize * contract.imgSize * 3)
                let roi = CropGeometry.regionOfInterest(width: picture.width, height: picture.height,
                                                        imgSize: contract.imgSize, resizeSize: contract.resizeSize)
                let app = try coreMLPixels(image, roi: roi, imgSize: contract.imgSize)
                // The same region measured from the top instead of the bottom: the other origin convention.
                let flippedROI = CGRect(x: roi.minX, y: 1 - roi.maxY, width: roi.width, height: roi.height)
                let flipped = try coreMLPixels(image, roi: flippedROI, imgSize: contract.imgSize)
                let side = Double(min(picture.width, picture.height))
                let w = Double(picture.width), h = Double(picture.height)
                let centre = try coreMLPixels(image, roi: CGRect(x: (w - side) / 2 / w, y: (h - side) / 2 / h,
                                                                 width: side / w, height: side / h),
                                              imgSize: contract.imgSize)
                let meanOurs = meanAbs(app, python)
                let maxOurs = zip(app, python).map { abs($0 - $1) }.max() ?? 0
                let meanFlipped = meanAbs(flipped, python)
                let meanCentre = meanAbs(centre, python)
                report.append(picture.name.padding(toLength: 15, withPad: " ", startingAt: 0)
                    + String(format: "%3d/%-3d   %12.2f %12.1f %18.2f %20.2f", contract.imgSize, contract.resizeSize,
                             meanOurs, maxOurs, meanFlipped, meanCentre))
                ours += meanOurs
                flippedTotal += meanFlipped
                // Whatever Core ML's filter, the contract's region is nearer Python than Vision's plain centre crop
                // (which keeps the whole central square), unless the crop ratio is 1.
                if contract.imgSize != contract.resizeSize {
                    XCTAssertLessThan(meanOurs, meanCentre, "\(picture.name) \(contract.imgSize)/\(contract.resizeSize)")
                }
            }
        }
        print("Core ML crop/scale against Python's resize_and_crop (8-bit levels):\n" + report.joined(separator: "\n"))
        // cropRect is measured from the bottom-left corner, as Vision's regionOfInterest (CropGeometry's convention).
        XCTAssertLessThanOrEqual(ours, flippedTotal + 1e-9, report.joined(separator: "\n"))
    }
}
