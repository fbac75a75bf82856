import SwiftUI
import UIKit

/// A small UIImagePickerController wrapper for taking one photo. `onFinish` gets the photo, or nil when the
/// user cancels; the presenting view dismisses the picker. The UIImage keeps the camera's EXIF orientation,
/// which survives the JPEG the app makes of it (DemoModel) and ImageIO applies.
struct CameraPicker: UIViewControllerRepresentable {
    @MainActor static var isAvailable: Bool { UIImagePickerController.isSourceTypeAvailable(.camera) }

    let onFinish: @MainActor (UIImage?) -> Void

    func makeCoordinator() -> Coordinator { Coordinator(onFinish: onFinish) }

    func makeUIViewController(context: Context) -> UIImagePickerController {
        let picker = UIImagePickerController()
        picker.sourceType = .camera
        picker.delegate = context.coordinator
        return picker
    }

    func updateUIViewController(_ picker: UIImagePickerController, context: Context) {}

    @MainActor
    final class Coordinator: NSObject, UIImagePickerControllerDelegate, UINavigationControllerDelegate {
        private let onFinish: @MainActor (UIImage?) -> Void

        init(onFinish: @escaping @MainActor (UIImage?) -> Void) { self.onFinish = onFinish }

        func imagePickerController(_ picker: UIImagePickerController,
                                   didFinishPickingMediaWithInfo info: [UIImagePickerController.InfoKey: Any]) {
            onFinish(info[.originalImage] as? UIImage)
        }

        func imagePickerControllerDidCancel(_ picker: UIImagePickerController) {
            onFinish(nil)
        }
    }
}
