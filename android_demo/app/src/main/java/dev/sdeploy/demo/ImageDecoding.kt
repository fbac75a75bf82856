package dev.sdeploy.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import dev.sdeploy.demo.core.ArgbImage
import dev.sdeploy.demo.core.DecodePlan
import dev.sdeploy.demo.core.OrientedImage
import java.io.ByteArrayInputStream
import java.io.FileNotFoundException
import java.io.IOException
import java.io.InputStream

/** Something to classify: a bundled asset, a content:// URI (photo picker, camera) or bytes (self-test PNGs). */
sealed class ImageSource(val title: String) {
    abstract fun open(context: Context): InputStream

    class Asset(private val name: String) : ImageSource(name) {
        override fun open(context: Context): InputStream = context.assets.open(name)
    }

    class Content(private val uri: Uri, title: String) : ImageSource(title) {
        override fun open(context: Context): InputStream =
            context.contentResolver.openInputStream(uri) ?: throw FileNotFoundException("cannot open $uri")
    }

    class Bytes(private val bytes: ByteArray, title: String) : ImageSource(title) {
        override fun open(context: Context): InputStream = ByteArrayInputStream(bytes)
    }
}

/**
 * Image file -> upright, non-premultiplied ARGB pixels, the way shufflenet_deploy's `load_image`
 * reads it (alpha dropped later by the preprocessing, EXIF orientation applied).
 *
 * Large JPEGs are decoded at 1/2, 1/4 or 1/8 size (BitmapFactory's `inSampleSize`, core/DecodePlan.kt)
 * so the shorter side stays at least 2 x resize_size: a 24 MP photo becomes 1500 x 1000 pixels
 * (6 MB) instead of 96 MB, within the parity bound README.md documents. Other formats are decoded
 * whole up to 16 MP (Android would shrink them by dropping pixels, which aliases).
 */
object ImageDecoding {
    /** The decoded pixels, upright through the EXIF orientation (a view: no rotated copy). */
    class Decoded(val image: OrientedImage, val sampleSize: Int, val fileWidth: Int, val fileHeight: Int)

    fun decode(context: Context, source: ImageSource, resizeSize: Int): Decoded {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        source.open(context).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IOException("${source.title} is not an image this device can decode")
        val sampleSize = DecodePlan.sampleSize(bounds.outWidth, bounds.outHeight, resizeSize, DecodePlan.nativeScaling(bounds.outMimeType))

        val options = BitmapFactory.Options().apply {
            inSampleSize = sampleSize
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inPremultiplied = false // getPixels then returns the file's own RGB even where alpha < 255
            inScaled = false
        }
        val bitmap = source.open(context).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IOException("cannot decode ${source.title}")
        val width = bitmap.width
        val height = bitmap.height
        val pixels = IntArray(width * height)
        bitmap.getPixels(pixels, 0, width, 0, 0, width, height)
        bitmap.recycle()

        val orientation = try {
            source.open(context).use { ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL) }
        } catch (e: IOException) {
            ExifInterface.ORIENTATION_NORMAL
        }
        return Decoded(OrientedImage(ArgbImage(pixels, width, height), orientation), sampleSize, bounds.outWidth, bounds.outHeight)
    }

    /** A displayable bitmap of at most [maxSide] pixels per side. */
    fun displayBitmap(image: OrientedImage, maxSide: Int = 1024): Bitmap {
        val small = image.thumbnail(maxSide)
        return Bitmap.createBitmap(small.pixels, small.width, small.height, Bitmap.Config.ARGB_8888)
    }
}
